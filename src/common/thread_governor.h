#pragma once

#include <chrono>
#include <functional>
#include <string>

namespace mnv2 {

/// Keeps the intra-op thread count within the cores other processes leave
/// idle while a run goes on. Start-up sizing (default_thread_count) cannot
/// see a process that arrives later: with one busy newcomer on 2 cores, 2
/// OpenMP threads wait for each other at every barrier and the main job's
/// training fell to 0.30 of its quiet throughput (bench/contention.py).
///
/// poll() is cheap (a clock read); at most once per interval it reads
/// /proc/stat and this process's CPU time, and sets at::set_num_threads to
/// the cores left (at least 1), and back up when they free (also after a start
/// among busy cores). Only where this process may use every core of the machine
/// (/proc/stat counts the whole machine).
class ThreadGovernor {
 public:
  /// Starts from the current intra-op thread count; goes up to the
  /// machine's cores. `report` gets one line per change (default: the log).
  /// Disabled: poll() does nothing.
  explicit ThreadGovernor(
      bool enabled,
      std::function<void(const std::string&)> report = {},
      std::chrono::milliseconds interval = std::chrono::seconds(1));

  void poll();

  /// The cores other processes kept busy, from CPU-time readings: the
  /// machine's busy core-seconds minus ours over `wall_seconds`.
  static double other_processes_cores(double machine_busy_seconds,
                                      double own_cpu_seconds,
                                      double wall_seconds);
  /// The thread count for `other_cores` busy elsewhere on `cores` cores:
  /// a core counts as taken from 0.6 of it busy (no flapping around half).
  static int threads_for(double other_cores, int cores, int max_threads);

 private:
  void sample();

  int cores_;
  bool enabled_;
  std::function<void(const std::string&)> report_;
  std::chrono::milliseconds interval_;
  std::chrono::steady_clock::time_point last_time_;
  double last_machine_busy_ = 0;  // seconds
  double last_own_cpu_ = 0;       // seconds
  int threads_;
};

}  // namespace mnv2
