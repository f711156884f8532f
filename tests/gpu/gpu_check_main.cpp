// mnv2-gpu-check: the CUDA path (training, AMP, inference, NCCL, throughput)
// checked against independent references, built from the model library and
// the engine's step core alone, so that a GPU machine with nothing but
// LibTorch, a compiler, nvcc and CMake can build and run it
// (scripts/gpu-check.sh). `--device cpu --short` keeps it alive in CI.
#include "checks.h"

#include <torch/cuda.h>
#include <torch/torch.h>

#include <ATen/Context.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>

namespace {

constexpr const char* kUsage =
    "usage: mnv2-gpu-check [--device cuda|cpu] [--short] [--out DIR] "
    "[--python PYTHON] [--peer-script peer_throughput.py]";

int usage_error(const std::string& message) {
  std::cerr << "mnv2-gpu-check: " << message << "\n" << kUsage << "\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace mnv2::gpu_check;
  if (argc == 2 && std::strcmp(argv[1], "--nccl-worker") == 0) {
    try {
      return run_nccl_worker();
    } catch (const std::exception& e) {
      std::cerr << "nccl worker: " << e.what() << "\n";
      return 1;
    }
  }
  CheckOptions options;
  options.self = std::filesystem::canonical("/proc/self/exe").string();
  options.peer_script = MNV2_GPU_CHECK_PEER_SCRIPT;
  options.out_dir = "gpu-check-out";
  std::string device = "cuda";
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    const auto value = [&]() -> const char* {
      return i + 1 < argc ? argv[++i] : nullptr;
    };
    if (flag == "--short") {
      options.short_mode = true;
    } else if (flag == "--device" || flag == "--out" || flag == "--python" ||
               flag == "--peer-script") {
      const char* v = value();
      if (!v) {
        return usage_error(flag + " needs a value");
      }
      (flag == "--device"   ? device
       : flag == "--out"    ? options.out_dir
       : flag == "--python" ? options.python
                            : options.peer_script) = v;
    } else if (flag == "-h" || flag == "--help") {
      std::cout << kUsage << "\n";
      return 0;
    } else {
      return usage_error("unknown option '" + flag + "'");
    }
  }
  if (device != "cuda" && device != "cpu") {
    return usage_error("--device must be cuda or cpu, got '" + device + "'");
  }
  if (device == "cuda" && !torch::cuda::is_available()) {
    std::cerr << "mnv2-gpu-check: --device cuda: no CUDA device is visible "
                 "to this LibTorch (use --device cpu for the CPU mode)\n";
    return 1;
  }
  options.device = device == "cuda" ? torch::Device(torch::kCUDA, 0)
                                    : torch::Device(torch::kCPU);
  std::error_code ignored;
  std::filesystem::create_directories(options.out_dir, ignored);
  if (options.device.is_cuda()) {
    at::globalContext().setBenchmarkCuDNN(true);
  }
  std::cout << "mnv2-gpu-check: device " << options.device.str()
            << (options.device.is_cuda()
                    ? " (" + std::to_string(torch::cuda::device_count()) +
                          " visible), cuDNN benchmark mode on"
                    : std::string(" (CPU mode: NCCL and throughput skipped)"))
            << (options.short_mode ? ", short mode" : "") << "\n";

  Table table;
  check_forward_backward(options, table);
  check_amp(options, table);
  check_inference(options, table);
  check_nccl(options, table);
  check_throughput(options, table);

  const auto text = table.text();
  std::ofstream(options.out_dir + "/gpu-check.txt") << text;
  std::ofstream(options.out_dir + "/gpu-check.json") << table.json();
  std::cout << "\n" << text;
  if (table.failed()) {
    std::cout << "mnv2-gpu-check: FAILED (table and logs in " << options.out_dir
              << ")\n";
    return 1;
  }
  std::cout << "mnv2-gpu-check: all checks passed (table in " << options.out_dir
            << ")\n";
  return 0;
}
