#pragma once

// What the three programs share: the one place that turns a flag table into
// a command line (cxxopts stays here, out of the engine's headers) and the
// one place that chooses exit statuses.

#include "common/errors.h"
#include "common/flag_table.h"

#include <cxxopts.hpp>

#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

namespace mnv2 {

/// A bad flag or flag value, found where the command line is interpreted:
/// a setting that cannot be honoured, like the engine's ConfigError (exit 2).
class UsageError : public ConfigError {
 public:
  using ConfigError::ConfigError;
};

/// Runs a program's body and turns every error into one line on stderr and
/// an exit status: 2 for usage errors (bad flags or values, or settings the
/// engine cannot honour: ConfigError), 1 otherwise.
int run_program(const char* program, const std::function<int()>& body);

/// The exit status for how a run ended: 0, 1 for a failed check, 130/143
/// after SIGINT/SIGTERM.
int exit_status(Outcome outcome);

/// Throws UsageError with the first problem, if any.
void refuse_problems(const std::vector<std::string>& problems);

/// A parsed command line, ready to write into a config.
template <class Config>
class CommandLine {
 public:
  /// Parses argv against `table`; nullopt after printing --help. Stray
  /// arguments are a UsageError unless `allow_extra` (see `extra()`).
  static std::optional<CommandLine> parse(const FlagTable<Config>& table,
                                          const char* program,
                                          const std::string& description,
                                          int argc,
                                          char** argv,
                                          bool allow_extra = false);

  /// Writes every flag given on the command line into `config`; the others
  /// keep the config's values.
  void apply(Config& config) const;

  /// Whether the flag `name` was given on the command line.
  bool given(const std::string& name) const {
    return result_.count(name) != 0;
  }

  /// Arguments that are not flags (when allowed).
  const std::vector<std::string>& extra() const {
    return result_.unmatched();
  }

 private:
  CommandLine(const FlagTable<Config>& table,
              std::unique_ptr<cxxopts::Options> options,
              cxxopts::ParseResult result)
      : table_(&table),
        options_(std::move(options)),
        result_(std::move(result)) {}

  const FlagTable<Config>* table_;
  std::unique_ptr<cxxopts::Options> options_;
  cxxopts::ParseResult result_;
};

namespace detail {

template <typename T>
std::string default_text(const T& value) {
  std::ostringstream out;
  if constexpr (std::is_same_v<T, bool>) {
    out << (value ? "true" : "false");
  } else {
    out << value;
  }
  return out.str();
}

/// What a flag's value must be, for the error naming a value that is not.
template <typename T>
const char* value_kind() {
  if constexpr (std::is_same_v<T, bool>) {
    return "true or false";
  } else if constexpr (std::is_integral_v<T>) {
    return "a whole number";
  } else if constexpr (std::is_floating_point_v<T>) {
    return "a number";
  } else {
    return "a value";
  }
}

/// cxxopts' value whose parse error names the flag (cxxopts' own says only
/// "Argument '0.1' failed to parse").
template <typename T>
class NamedValue : public cxxopts::values::standard_value<T> {
 public:
  explicit NamedValue(std::string flag) : flag_(std::move(flag)) {}

  void parse(const std::string& text) const override {
    try {
      cxxopts::values::standard_value<T>::parse(text);
    } catch (const cxxopts::exceptions::exception&) {
      throw UsageError("--" + flag_ + " must be " + value_kind<T>() +
                       ", got '" + text + "'");
    }
  }

  std::shared_ptr<cxxopts::Value> clone() const override {
    return std::make_shared<NamedValue>(*this);
  }

 private:
  std::string flag_;
};

/// The cxxopts value for one flag, with the default config's value shown.
template <typename T>
std::shared_ptr<cxxopts::Value> value_for(const std::string& flag,
                                          const T& default_value,
                                          FlagKind kind) {
  auto value = std::make_shared<NamedValue<T>>(flag);
  if constexpr (std::is_same_v<T, bool>) {
    if (kind == FlagKind::kToggle) {
      value->default_value(default_text(default_value))->implicit_value("true");
    }
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (!default_value.empty()) {
      value->default_value(default_value);
    }
  } else if constexpr (!std::is_same_v<T, std::vector<std::string>>) {
    value->default_value(default_text(default_value));
  }
  return value;
}

}  // namespace detail

template <class Config>
std::optional<CommandLine<Config>> CommandLine<Config>::parse(
    const FlagTable<Config>& table,
    const char* program,
    const std::string& description,
    int argc,
    char** argv,
    bool allow_extra) {
  const Config defaults;
  auto options = std::make_unique<cxxopts::Options>(program, description);
  for (const auto& flag : table) {
    if (flag.kind == FlagKind::kSwitch) {
      options->add_options(flag.group)(flag.name, flag.help);
      continue;
    }
    std::visit(
        [&](auto member) {
          options->add_options(flag.group)(
              flag.name,
              flag.help,
              detail::value_for(flag.name, defaults.*member, flag.kind));
        },
        flag.field);
  }
  options->add_options()("h,help", "print this help");
  auto result = options->parse(argc, argv);
  if (result.count("help") != 0) {
    std::cout << options->help() << "\n";
    return std::nullopt;
  }
  if (!allow_extra && !result.unmatched().empty()) {
    throw UsageError("unexpected argument '" + result.unmatched().front() +
                     "'");
  }
  return CommandLine(table, std::move(options), std::move(result));
}

template <class Config>
void CommandLine<Config>::apply(Config& config) const {
  for (const auto& flag : *table_) {
    if (result_.count(flag.name) == 0) {
      continue;
    }
    std::visit(
        [&](auto member) {
          using T = std::decay_t<decltype(config.*member)>;
          if constexpr (std::is_same_v<T, bool>) {
            config.*member = flag.kind == FlagKind::kSwitch
                                 ? flag.switch_value
                                 : result_[flag.name].template as<bool>();
          } else {
            config.*member = result_[flag.name].template as<T>();
          }
        },
        flag.field);
  }
}

}  // namespace mnv2
