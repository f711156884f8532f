#include "common/thread_governor.h"

#include <ATen/Parallel.h>
#include <sys/resource.h>
#include <unistd.h>

#include <sched.h>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <thread>

namespace mnv2 {

namespace {

/// Busy seconds of all the machine's CPUs since boot (/proc/stat), or -1.
double machine_busy_seconds() {
  std::ifstream in("/proc/stat");
  std::string label;
  in >> label;
  double busy = 0;
  double value = 0;
  int fields = 0;
  for (; fields < 8 && (in >> value); ++fields) {
    if (fields != 3 && fields != 4) {  // idle and iowait
      busy += value;
    }
  }
  return fields == 8 ? busy / static_cast<double>(sysconf(_SC_CLK_TCK)) : -1;
}

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

/// Whether this process may run on every CPU the machine has.
bool owns_whole_machine() {
  cpu_set_t set;
  CPU_ZERO(&set);
  return sched_getaffinity(0, sizeof(set), &set) == 0 &&
         CPU_COUNT(&set) ==
             static_cast<int>(std::thread::hardware_concurrency());
}

}  // namespace

ThreadGovernor::ThreadGovernor(int max_threads,
                               bool enabled,
                               std::function<void(const std::string&)> report,
                               std::chrono::milliseconds interval)
    : max_threads_(std::max(1, max_threads)),
      cores_(static_cast<int>(std::thread::hardware_concurrency())),
      enabled_(enabled && max_threads > 1 && owns_whole_machine() &&
               machine_busy_seconds() >= 0),
      report_(std::move(report)),
      interval_(interval),
      threads_(max_threads_) {
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
  last_machine_busy_ = machine_busy_seconds();
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
  const int threads = threads_for(others, cores_, max_threads_);
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
