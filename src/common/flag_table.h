#pragma once

// Each program option is declared once, as one entry of a table: its name,
// help, the config field it writes (whose value in a default config is the
// default shown), and its key in the config echo. --help, parsing (in apps/),
// and the JSON echo in logs and checkpoints all come from the table.

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace mnv2 {

/// How a flag takes its value.
enum class FlagKind {
  kValue,   ///< --name VALUE
  kSwitch,  ///< --name alone writes `switch_value` into a bool field
  kToggle,  ///< --name (true) or --name=false
};

template <class Config>
struct Flag {
  using Field = std::variant<std::string Config::*,
                             int64_t Config::*,
                             int Config::*,
                             uint64_t Config::*,
                             double Config::*,
                             bool Config::*,
                             std::vector<std::string> Config::*>;

  std::string name;   ///< without the leading "--"
  std::string group;  ///< section in --help ("" for none)
  std::string help;
  Field field;           ///< where the value is written
  std::string json_key;  ///< key in the config echo; "" keeps it out
  FlagKind kind = FlagKind::kValue;
  bool switch_value = true;  ///< for kSwitch
};

template <class Config>
using FlagTable = std::vector<Flag<Config>>;

/// The configuration as a JSON object: every echoed flag's field under its
/// key (what the training log, checkpoints and eval's JSON record).
template <class Config>
nlohmann::json config_json(const FlagTable<Config>& table,
                           const Config& config) {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& flag : table) {
    if (!flag.json_key.empty()) {
      std::visit([&](auto member) { out[flag.json_key] = config.*member; },
                 flag.field);
    }
  }
  return out;
}

/// Writes into `config` each echoed flag's field found in `echo` (what
/// config_json wrote); throws nlohmann::json::type_error for a value of
/// another type.
template <class Config>
void config_from_json(const FlagTable<Config>& table,
                      const nlohmann::json& echo,
                      Config& config) {
  for (const auto& flag : table) {
    if (!flag.json_key.empty() && echo.contains(flag.json_key)) {
      std::visit(
          [&](auto member) { echo.at(flag.json_key).get_to(config.*member); },
          flag.field);
    }
  }
}

/// The echoed flags whose values differ between two configurations, with
/// both values: "--name VALUE_A -> VALUE_B".
template <class Config>
std::vector<std::string> changed_flags(const FlagTable<Config>& table,
                                       const Config& from,
                                       const Config& to) {
  const auto a = config_json(table, from);
  const auto b = config_json(table, to);
  std::vector<std::string> out;
  for (const auto& flag : table) {
    if (!flag.json_key.empty() && a[flag.json_key] != b[flag.json_key]) {
      out.push_back("--" + flag.name + " " + a[flag.json_key].dump() + " -> " +
                    b[flag.json_key].dump());
    }
  }
  return out;
}

/// Collects the one-line reasons a configuration cannot run, in order (what
/// each config's `problems()` returns).
class Problems {
 public:
  void need(bool ok, const std::string& message) {
    if (!ok) {
      list_.push_back(message);
    }
  }
  std::vector<std::string> list() && {
    return std::move(list_);
  }

 private:
  std::vector<std::string> list_;
};

}  // namespace mnv2
