#include "common/thread_governor.h"

#include "common/log.h"
#include "common/runtime.h"

#include <ATen/Parallel.h>
#include <sys/resource.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <thread>

namespace mnv2 {

namespace {

/// CPU seconds used by every thread of this process.
double own_cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  const auto seconds = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) +
           static_cast<double>(t.tv_usec) * 1e-6;
  };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

}  // namespace

ThreadGovernor::ThreadGovernor(bool enabled,
                               std::function<void(const std::string&)> report,
                               std::chrono::milliseconds interval)
    : cores_(static_cast<int>(std::thread::hardware_concurrency())),
      // /proc/stat counts the whole machine: only meaningful where this
      // process may use all of it.
      enabled_(enabled && cores_ > 1 && usable_cores() == cores_ &&
               machine_cpu_time().busy >= 0),
      report_(report ? std::move(report)
                     : [](const std::string& line) { log::info(line); }),
      interval_(interval),
      threads_(at::get_num_threads()) {
  if (enabled_) {
    sample();
  }
}

double ThreadGovernor::other_processes_cores(double machine_busy_seconds,
                                             double own_cpu_seconds,
                                             double wall_seconds) {
  if (wall_seconds <= 0) {
    return 0;
  }
  return std::max(0.0, (machine_busy_seconds - own_cpu_seconds) / wall_seconds);
}

int ThreadGovernor::threads_for(double other_cores,
                                int cores,
                                int max_threads) {
  const int taken = static_cast<int>(std::floor(other_cores + 0.4));
  return std::clamp(cores - taken, 1, max_threads);
}

void ThreadGovernor::sample() {
  last_time_ = std::chrono::steady_clock::now();
  last_machine_busy_ = machine_cpu_time().busy;
  last_own_cpu_ = own_cpu_seconds();
}

void ThreadGovernor::poll() {
  if (!enabled_ || std::chrono::steady_clock::now() - last_time_ < interval_) {
    return;
  }
  const auto then = last_time_;
  const double machine0 = last_machine_busy_;
  const double own0 = last_own_cpu_;
  sample();
  const double wall = std::chrono::duration<double>(last_time_ - then).count();
  const double others = other_processes_cores(
      last_machine_busy_ - machine0, last_own_cpu_ - own0, wall);
  const int threads = threads_for(others, cores_, cores_);
  if (threads != threads_) {
    at::set_num_threads(threads);
    char busy[32];
    std::snprintf(busy, sizeof(busy), "%.1f", others);
    report_(std::string("other processes keep about ") + busy + " of " +
            std::to_string(cores_) + " cores busy: intra-op threads " +
            std::to_string(threads_) + " -> " + std::to_string(threads));
    threads_ = threads;
  }
}

}  // namespace mnv2
