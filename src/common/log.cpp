#include "common/log.h"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <memory>
#include <vector>

namespace mnv2::log {

namespace {
std::shared_ptr<spdlog::logger>& logger() {
  static std::shared_ptr<spdlog::logger> instance = [] {
    auto console = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
    auto made = std::make_shared<spdlog::logger>("mnv2", console);
    made->set_pattern("[%H:%M:%S] %^%l%$ %v");
    return made;
  }();
  return instance;
}

// The log file's own logger, for errors that reach the console by another
// road (the programs print them on stderr).
std::shared_ptr<spdlog::logger>& file_logger() {
  static std::shared_ptr<spdlog::logger> instance;
  return instance;
}
}  // namespace

void init(const std::string& file, bool verbose) {
  auto console = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  console->set_pattern("[%H:%M:%S] %^%l%$ %v");
  std::vector<spdlog::sink_ptr> sinks{console};
  file_logger().reset();
  if (!file.empty()) {
    auto file_sink =
        std::make_shared<spdlog::sinks::basic_file_sink_mt>(file, false);
    file_sink->set_pattern("[%Y-%m-%d %H:%M:%S.%e] %l %v");
    sinks.push_back(file_sink);
    file_logger() = std::make_shared<spdlog::logger>("mnv2-file", file_sink);
    file_logger()->flush_on(spdlog::level::trace);
  }
  auto made =
      std::make_shared<spdlog::logger>("mnv2", sinks.begin(), sinks.end());
  made->set_level(verbose ? spdlog::level::debug : spdlog::level::info);
  // Every line reaches the file at once: the log is complete up to the last
  // line printed, whatever kills the process.
  made->flush_on(spdlog::level::trace);
  logger() = made;
}

std::string& prefix() {
  static std::string text;
  return text;
}

std::string rank_prefix() {
  return prefix();
}

void init_secondary_rank(int rank) {
  prefix() = "rank " + std::to_string(rank) + ": ";
  auto console = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  console->set_pattern("[%H:%M:%S] [rank " + std::to_string(rank) +
                       "] %^%l%$ %v");
  file_logger().reset();
  auto made = std::make_shared<spdlog::logger>("mnv2", console);
  made->set_level(spdlog::level::warn);
  made->flush_on(spdlog::level::trace);
  logger() = made;
}

void debug(const std::string& message) {
  logger()->debug(message);
}
void info(const std::string& message) {
  logger()->info(message);
}
void warn(const std::string& message) {
  logger()->warn(message);
}
void error(const std::string& message) {
  logger()->error(message);
}
void error_to_file(const std::string& message) {
  if (file_logger()) {
    file_logger()->error(message);
  }
}

void flush() {
  logger()->flush();
}

}  // namespace mnv2::log
