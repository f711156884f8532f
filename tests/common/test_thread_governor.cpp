// The arithmetic behind mnv2::ThreadGovernor (its effect on a busy machine
// is measured by bench/contention.py).
#include "common/runtime.h"
#include "common/thread_governor.h"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <catch2/catch.hpp>

#include <thread>

namespace {
double torch_sum_for_test() {
  return torch::ones({1 << 20}).sum().item<double>();
}
}  // namespace

TEST_CASE("other processes' cores come from CPU-time readings", "[train]") {
  // 2 s of wall time; the machine's CPUs were busy 3.0 s, ours 1.9 s.
  CHECK(mnv2::ThreadGovernor::other_processes_cores(3.0, 1.9, 2.0) ==
        Approx(0.55));
  // Ours alone (readings round differently): never below 0.
  CHECK(mnv2::ThreadGovernor::other_processes_cores(1.9, 2.0, 1.0) == 0.0);
  CHECK(mnv2::ThreadGovernor::other_processes_cores(1.0, 0.0, 0.0) == 0.0);
}

TEST_CASE("the thread count leaves the cores others use", "[train]") {
  using mnv2::ThreadGovernor;
  // 2 cores, started with 2 threads.
  CHECK(ThreadGovernor::threads_for(0.0, 2, 2) == 2);
  CHECK(ThreadGovernor::threads_for(0.5, 2, 2) == 2);  // below 0.6 of a core
  CHECK(ThreadGovernor::threads_for(0.7, 2, 2) == 1);
  CHECK(ThreadGovernor::threads_for(1.0, 2, 2) == 1);
  CHECK(ThreadGovernor::threads_for(3.0, 2, 2) == 1);  // never below 1
  // 8 cores, started with 6 threads: never above the start-up count.
  CHECK(ThreadGovernor::threads_for(0.2, 8, 6) == 6);
  CHECK(ThreadGovernor::threads_for(2.6, 8, 6) == 5);
  CHECK(ThreadGovernor::threads_for(3.7, 8, 6) == 4);
}

TEST_CASE("a disabled governor leaves the threads alone", "[train]") {
  at::set_num_threads(2);
  int reports = 0;
  mnv2::ThreadGovernor governor(
      false,
      [&](const std::string&) { ++reports; },
      std::chrono::milliseconds(0));
  governor.poll();
  CHECK(at::get_num_threads() == 2);
  CHECK(reports == 0);
}

TEST_CASE("a loader worker's LibTorch calls stay on its own thread",
          "[train]") {
  at::set_num_threads(2);
  int worker_threads = 0;
  int fresh_threads = 0;
  std::thread([&] {
    mnv2::run_intra_op_on_this_thread_only();
    // A parallel ATen call afterwards must not restore the count.
    (void)torch_sum_for_test();
    worker_threads = at::get_num_threads();
  }).join();
  std::thread([&] { fresh_threads = at::get_num_threads(); }).join();
  CHECK(worker_threads == 1);
  // Other threads, the caller's included, keep theirs.
  CHECK(fresh_threads == 2);
  CHECK(at::get_num_threads() == 2);
}
