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
  /// Without a terminal, a line only when `seconds` have passed since the
  /// last one (or the start): a step that ends soon stays silent.
  Progress& at_most_every(double seconds) {
    min_seconds_ = seconds;
    return *this;
  }
  void finish();

 private:
  std::string label_;
  int64_t total_;
  int64_t interval_;
  bool shown_;
  bool terminal_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_line_;
  double min_seconds_ = 0;
};

}  // namespace mnv2
