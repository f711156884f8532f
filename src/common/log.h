#pragma once

// Logging for the engine and programs. spdlog stays inside log.cpp, which is
// compiled without LibTorch's include folder: the torch wheel bundles its own
// fmt, which Debian's spdlog must not be compiled against.

#include <sstream>
#include <string>

namespace mnv2::log {

/// Console logging, plus a log file when `file` is not empty. Safe to call
/// again (e.g. once the output folder is known).
void init(const std::string& file = {}, bool verbose = false);
/// For rank `rank` > 0 of a distributed run: warnings and errors only, on
/// the console, each prefixed with the rank.
void init_secondary_rank(int rank);
/// "rank N: " after init_secondary_rank, else "": for lines printed directly.
std::string rank_prefix();

void debug(const std::string& message);
void info(const std::string& message);
void warn(const std::string& message);
void error(const std::string& message);
/// Writes an error to the log file only (when there is one): for errors the
/// programs print on stderr themselves.
void error_to_file(const std::string& message);
/// Flushes every sink (each line is flushed as it is written anyway).
void flush();

/// Concatenates anything `operator<<` prints: log::info(cat("epoch ", n)).
template <typename... Parts>
std::string cat(const Parts&... parts) {
  std::ostringstream out;
  (out << ... << parts);
  return out.str();
}

}  // namespace mnv2::log
