#include "common/runtime.h"

#include <mobilenetv2/vision/image_decode.h>

#include "common/errors.h"
#include "common/log.h"

#include <charconv>

#include <ATen/Parallel.h>
#include <malloc.h>
#include <torch/cuda.h>
#include <opencv2/core/utility.hpp>

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <thread>

namespace mnv2 {

void configure_runtime(int threads) {
  // Keep freed memory in the process instead of unmapping and re-faulting it:
  // no mmap'd chunks (activations of a batch exceed glibc's 32 MiB cap for
  // the mmap threshold), and a heap that is neither trimmed nor grown in
  // small steps.
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  mallopt(M_TOP_PAD, 1 << 30);
  int count = threads > 0 ? threads : default_thread_count();
  // More threads than cores only contend: OpenMP's spinning threads then
  // collapse (1024 on 2 cores: three steps in 120 s, SIGTERM taking 110 s).
  if (const int cores = usable_cores(); count > cores) {
    log::warn(log::cat("--threads ",
                       count,
                       " is more than the ",
                       cores,
                       " cores this process may use: using ",
                       cores));
    count = cores;
  }
  at::set_num_threads(count);
  // OpenCV's own pool would compete with the loader's worker threads.
  cv::setNumThreads(1);
}

namespace {

/// The CPU quota of this process's cgroup in cores (cgroup v2 cpu.max or v1
/// cfs files), rounded up; 0 when there is none.
int cgroup_quota_cores() {
  const auto read_two = [](const char* path, std::string& a, std::string& b) {
    std::ifstream in(path);
    return static_cast<bool>(in >> a >> b);
  };
  std::string quota;
  std::string period;
  if (!read_two("/sys/fs/cgroup/cpu.max", quota, period)) {
    std::ifstream q("/sys/fs/cgroup/cpu/cpu.cfs_quota_us");
    std::ifstream p("/sys/fs/cgroup/cpu/cpu.cfs_period_us");
    if (!(q >> quota) || !(p >> period)) {
      return 0;
    }
  }
  if (quota == "max" || quota.rfind('-', 0) == 0) {
    return 0;
  }
  try {
    const double cores = std::stod(quota) / std::stod(period);
    return cores > 0 ? static_cast<int>(std::ceil(cores)) : 0;
  } catch (const std::exception&) {
    return 0;
  }
}

}  // namespace

MachineCpuTime machine_cpu_time() {
  std::ifstream in("/proc/stat");
  std::string label;
  in >> label;
  MachineCpuTime time{0, 0};
  double value = 0;
  int field = 0;
  for (; field < 8 && (in >> value); ++field) {
    time.total += value;
    if (field != 3 && field != 4) {  // idle and iowait
      time.busy += value;
    }
  }
  if (label != "cpu" || field < 8) {
    return {};
  }
  const auto ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  return {time.busy / ticks, time.total / ticks};
}

int usable_cores() {
  int cores = static_cast<int>(std::thread::hardware_concurrency());
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    cores = CPU_COUNT(&set);
  }
  if (const int quota = cgroup_quota_cores(); quota > 0) {
    cores = std::min(cores, quota);
  }
  return std::max(cores, 1);
}

namespace {

int idle_cores(std::chrono::milliseconds sample) {
  const int cores = usable_cores();
  const auto [busy0, total0] = machine_cpu_time();
  std::this_thread::sleep_for(sample);
  const auto [busy1, total1] = machine_cpu_time();
  if (total1 <= total0) {
    return cores;
  }
  const double host_cores = std::thread::hardware_concurrency();
  const double busy_cores = (busy1 - busy0) / (total1 - total0) * host_cores;
  const int idle = static_cast<int>(std::lround(host_cores - busy_cores));
  return std::clamp(idle, 1, cores);
}

}  // namespace

int default_thread_count() {
  // Sized once per process: a process that competes for the cores from the
  // start gets fewer threads (LibTorch's OpenMP threads spin while they wait
  // for each other, and collapse when another process holds their core).
  static const int count = idle_cores(std::chrono::milliseconds(100));
  return count;
}

namespace {

// Intel's AVX-512 BF16 without AMX: its vdpbf16ps does half the arithmetic
// per second of its fp32 FMA (bench/arithmetic_peak.cpp), so our bf16 step
// ran at 0.84-0.89x the fp32 one at 224 and bf16 inference at about 0.5x
// (docs/benchmarks.md); AMD's Zen 4 and AMX gain 1.4-1.9x.
bool bf16_slower_than_fp32_here() {
  return cpu_is_intel() && !cpu_has_amx_bf16();
}

}  // namespace

std::optional<c10::ScalarType> amp_dtype_for(
    const std::string& name,
    const torch::Device& device,
    const std::function<void(const std::string&)>& warn) {
  if (name == "auto") {
    if (device.is_cuda()) {
      return torch::kHalf;
    }
    if (!cpu_has_native_bf16()) {
      warn(
          "--amp: this CPU has no native bf16 (AVX-512 BF16 or AMX), so "
          "training runs in fp32; --amp-dtype bf16 forces emulated bf16");
      return std::nullopt;
    }
    if (bf16_slower_than_fp32_here()) {
      warn(
          "--amp: on this Intel CPU (AVX-512 BF16 without AMX) bf16 trains "
          "no faster than fp32, so training runs in fp32; --amp-dtype bf16 "
          "forces bf16");
      return std::nullopt;
    }
    return torch::kBFloat16;
  }
  const bool bf16 = name == "bf16";
  if (device.is_cpu() &&
      !(bf16 ? cpu_has_native_bf16() : cpu_has_native_fp16())) {
    warn("--amp-dtype " + name + ": this CPU has no native " + name +
         " (AVX-512 " + (bf16 ? "BF16" : "FP16") +
         " or AMX); it is emulated, "
         "10-25x slower than fp32");
  } else if (device.is_cpu() && bf16 && bf16_slower_than_fp32_here()) {
    // Asked for, so kept; but the user should know what it costs here.
    warn(
        "--amp-dtype bf16: on this Intel CPU (AVX-512 BF16 without AMX) bf16 "
        "runs slower than fp32 (measured: training 0.84-0.89x, inference "
        "0.5x)");
  }
  return bf16 ? torch::kBFloat16 : torch::kHalf;
}

torch::Device resolve_device(const std::string& name) {
  if (name == "auto") {
    return torch::cuda::is_available() ? torch::Device(torch::kCUDA, 0)
                                       : torch::Device(torch::kCPU);
  }
  if (name == "cpu") {
    return torch::kCPU;
  }
  if (name.rfind("cuda", 0) == 0) {
    int index = 0;
    if (name.size() > 4) {
      if (name[4] != ':' || name.size() == 5 ||
          name.find_first_not_of("0123456789", 5) != std::string::npos) {
        throw ConfigError("--device: expected cuda or cuda:N, got '" + name +
                          "'");
      }
      const auto digits = name.substr(5);
      const auto [end, error] =
          std::from_chars(digits.data(), digits.data() + digits.size(), index);
      if (error != std::errc() || end != digits.data() + digits.size()) {
        throw ConfigError("--device " + name + ": no such CUDA device index");
      }
    }
    if (!torch::cuda::is_available()) {
      throw ConfigError("--device " + name +
                        ": no CUDA device is available here");
    }
    if (index >= static_cast<int>(torch::cuda::device_count())) {
      throw ConfigError("--device " + name + ": only " +
                        std::to_string(torch::cuda::device_count()) +
                        " CUDA device(s)");
    }
    return {torch::kCUDA, static_cast<c10::DeviceIndex>(index)};
  }
  throw ConfigError("--device: expected auto, cpu, cuda or cuda:N, got '" +
                    name + "'");
}

// LibTorch's OpenMP runtime, where it has one (weak: a LibTorch on its own
// thread pool leaves it null). Outside a parallel region it sets the calling
// thread's own thread count.
extern "C" __attribute__((weak)) void omp_set_num_threads(int);

void run_intra_op_on_this_thread_only() {
  // LibTorch sets a thread's OpenMP count on its first parallel call; have
  // that happen now, so that it does not undo the count set here.
  (void)at::get_num_threads();
  if (omp_set_num_threads != nullptr) {
    omp_set_num_threads(1);
  }
}

void apply_max_image_pixels(int64_t pixels) {
  if (pixels < 1) {
    throw ConfigError("--max-image-pixels must be at least 1, got " +
                      std::to_string(pixels));
  }
  set_max_image_pixels(pixels);
}

}  // namespace mnv2
