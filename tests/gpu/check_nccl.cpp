// Row 4: NCCL through our process group and DDP's Reducer, over every visible
// GPU: one worker process per GPU, started as torchrun would (RANK,
// WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT), so that the launch
// detection and the TCP-store rendezvous are the programs' own. With one GPU
// the world is one and the collectives still run through NCCL.
#include "checks.h"

#include "../distributed/programs/ddp_equivalence_check.h"
#include "distributed/launch.h"
#include "distributed/process_group.h"

#include <torch/cuda.h>
#include <torch/torch.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

extern char** environ;

namespace mnv2::gpu_check {

namespace {

constexpr auto kWorkerTimeout = std::chrono::seconds(240);
constexpr const char* kResultsVariable = "MNV2_GPU_CHECK_RESULTS";

// A TCP port nobody listens on now (the kernel's pick), for the store.
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  if (fd < 0 ||
      ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    if (fd >= 0) {
      ::close(fd);
    }
    throw std::runtime_error("no free TCP port for the rendezvous");
  }
  ::close(fd);
  return ntohs(address.sin_port);
}

pid_t spawn_worker(const CheckOptions& options,
                   int rank,
                   int world,
                   int port,
                   const std::string& log,
                   const std::string& results) {
  std::vector<std::string> variables;
  for (char** e = environ; *e; ++e) {
    variables.emplace_back(*e);
  }
  variables.push_back("RANK=" + std::to_string(rank));
  variables.push_back("LOCAL_RANK=" + std::to_string(rank));
  variables.push_back("WORLD_SIZE=" + std::to_string(world));
  variables.push_back("LOCAL_WORLD_SIZE=" + std::to_string(world));
  variables.push_back("MASTER_ADDR=127.0.0.1");
  variables.push_back("MASTER_PORT=" + std::to_string(port));
  variables.push_back(std::string(kResultsVariable) + "=" + results);
  std::vector<char*> envp;
  for (auto& v : variables) {
    envp.push_back(v.data());
  }
  envp.push_back(nullptr);
  std::string self = options.self;
  std::string flag = "--nccl-worker";
  char* argv[] = {self.data(), flag.data(), nullptr};
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(
      &actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  pid_t pid = 0;
  const int status =
      posix_spawn(&pid, self.c_str(), &actions, nullptr, argv, envp.data());
  posix_spawn_file_actions_destroy(&actions);
  if (status != 0) {
    throw std::runtime_error("cannot start " + self + " as an NCCL worker");
  }
  return pid;
}

// Waits for every worker; kills all of them past the timeout (a hung
// collective). Returns how many did not exit with status 0.
int wait_for(std::vector<pid_t> pids, bool& timed_out) {
  const auto deadline = std::chrono::steady_clock::now() + kWorkerTimeout;
  int failed = 0;
  timed_out = false;
  while (!pids.empty()) {
    for (auto it = pids.begin(); it != pids.end();) {
      int status = 0;
      if (::waitpid(*it, &status, WNOHANG) == *it) {
        failed += WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
        it = pids.erase(it);
      } else {
        ++it;
      }
    }
    if (!pids.empty() && std::chrono::steady_clock::now() > deadline) {
      timed_out = true;
      for (const auto pid : pids) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, nullptr, 0);
      }
      failed += static_cast<int>(pids.size());
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return failed;
}

}  // namespace

void check_nccl(const CheckOptions& options, Table& table) {
  if (!options.device.is_cuda()) {
    table.skip("nccl", "skipped: no CUDA");
    return;
  }
  try {
    const int world = static_cast<int>(torch::cuda::device_count());
    const int port = free_port();
    std::vector<pid_t> pids;
    for (int rank = 0; rank < world; ++rank) {
      const auto stem = options.out_dir + "/nccl-rank" + std::to_string(rank);
      pids.push_back(spawn_worker(
          options, rank, world, port, stem + ".log", stem + ".rows"));
    }
    bool timed_out = false;
    const int failed = wait_for(pids, timed_out);
    std::ifstream rows(options.out_dir + "/nccl-rank0.rows");
    std::string line;
    int read = 0;
    while (std::getline(rows, line)) {
      std::istringstream fields(line);
      std::string name, status, figures;
      std::getline(fields, name, '\t');
      std::getline(fields, status, '\t');
      std::getline(fields, figures);
      table.add(name, status == "pass", figures);
      ++read;
    }
    if (failed > 0 || read == 0) {
      table.add("nccl_workers_x" + std::to_string(world),
                false,
                std::to_string(failed) + " of " + std::to_string(world) +
                    " workers failed" + (timed_out ? " (timed out)" : "") +
                    "; logs: " + options.out_dir + "/nccl-rank*.log");
    }
  } catch (const std::exception& e) {
    table.error("nccl", e.what());
  }
}

int run_nccl_worker() {
  const char* results_path = std::getenv(kResultsVariable);
  const auto launch = detect_launch();
  const torch::Device device(torch::kCUDA,
                             static_cast<c10::DeviceIndex>(launch.local_rank));
  const NoTf32 exact;
  const std::string world = "_x" + std::to_string(launch.world_size);
  std::ostringstream rows;
  bool all_passed = true;
  const auto row =
      [&](const std::string& name, bool passed, const std::string& figures) {
        rows << name << world << '\t' << (passed ? "pass" : "FAIL") << '\t'
             << figures << '\n';
        all_passed = all_passed && passed;
        std::printf("rank %d: %s %s: %s\n",
                    launch.rank,
                    name.c_str(),
                    passed ? "pass" : "FAIL",
                    figures.c_str());
      };
  DistributedOptions options;
  options.backend = "nccl";
  options.timeout = std::chrono::seconds(120);
  Distributed distributed(launch, device, options);

  // All-reduce: every rank contributes rank + 1.
  std::vector<torch::Tensor> sum = {torch::full(
      {1 << 20}, launch.rank + 1.0, torch::TensorOptions().device(device))};
  distributed.all_reduce(sum, c10d::ReduceOp::SUM);
  const double expected = launch.world_size * (launch.world_size + 1) / 2.0;
  const double error = (sum[0] - expected).abs().max().item<double>();
  row("nccl_allreduce",
      error == 0,
      "sum of rank+1 over 2^20 floats: max |error| " + sig(error) +
          " (expected " + sig(expected) + " exactly)");

  // Broadcast: every rank ends with rank 0's values.
  std::vector<torch::Tensor> from_zero = {
      torch::full({4096},
                  static_cast<double>(launch.rank),
                  torch::TensorOptions().device(device))};
  distributed.broadcast_from_rank0(from_zero);
  const bool zeros = from_zero[0].abs().max().item<double>() == 0;
  row("nccl_broadcast",
      zeros,
      std::string("rank 0's values everywhere: ") + (zeros ? "yes" : "no"));

  for (const std::string hook : {"none", "fp16"}) {
    const auto result =
        test::check_ddp_equivalence(distributed, launch, device, hook);
    row("nccl_ddp_equivalence_" + hook, result.passed, result.summary);
  }
  if (launch.rank == 0 && results_path) {
    std::ofstream(results_path) << rows.str();
  }
  return all_passed ? 0 : 1;
}

}  // namespace mnv2::gpu_check
