#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace mnv2 {

/// A progress bar on a terminal (step, stats, images/s, ETA), or one log line
/// every `log_interval` steps when stderr is not a terminal.
class Progress {
 public:
  /// `shown` false: prints nothing (ranks other than 0 of a distributed run).
  Progress(std::string label,
           int64_t total_steps,
           int64_t log_interval,
           bool shown = true);
  /// `images` processed so far in this run of the bar.
  void update(int64_t step, int64_t images, const std::string& stats);
  void finish();

 private:
  std::string label_;
  int64_t total_;
  int64_t interval_;
  bool shown_;
  bool terminal_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace mnv2
