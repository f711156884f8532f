#pragma once

#include <mobilenetv2/util/cpu_features.h>  // cpu_has_native_bf16/fp16

#include <torch/types.h>

#include <functional>
#include <optional>
#include <string>

namespace mnv2 {

/// Process-wide settings that make LibTorch fast on CPU, applied once at
/// start-up: glibc malloc tuned to stop returning memory to the kernel (with
/// the defaults, oneDNN's large temporary buffers page-fault on every batch:
/// 20x slower on this machine), and explicit intra-op threads (LibTorch's
/// default was 1 here). `threads` <= 0 means all available cores.
void configure_runtime(int threads);

/// For helper threads (the loader's workers): LibTorch operations called
/// from this thread run on it alone instead of starting a team of intra-op
/// threads per helper, which would compete with the network's threads.
void run_intra_op_on_this_thread_only();

/// The process's image pixel budget from --max-image-pixels; ConfigError
/// naming the flag when it is under 1.
void apply_max_image_pixels(int64_t pixels);

/// The number of threads `configure_runtime(0)` picks (and loader workers
/// by default): of the cores this process may use (CPU affinity capped by
/// the cgroup's CPU quota), those other processes leave idle at start-up.
int default_thread_count();

/// The cores this process may use: CPU affinity, capped by the cgroup's CPU
/// quota.
int usable_cores();

/// Busy and total CPU seconds of the whole machine since boot (/proc/stat);
/// both -1 where it cannot be read.
struct MachineCpuTime {
  double busy = -1;
  double total = -1;
};
MachineCpuTime machine_cpu_time();

/// The autocast dtype for an --amp-dtype on `device`: "auto" is fp16 on
/// CUDA, bf16 on a CPU where bf16 trains faster than fp32 (AMX, or AVX-512
/// BF16 other than Intel's), and no autocast (fp32) on other CPUs, with a
/// one-line `warn`; "bf16"/"fp16" as named. A named choice that is emulated
/// on this CPU, or bf16 where it runs slower than fp32, is reported through
/// `warn` (one line).
std::optional<c10::ScalarType> amp_dtype_for(
    const std::string& name,
    const torch::Device& device,
    const std::function<void(const std::string&)>& warn);

/// "auto" (CUDA when available, else CPU), "cpu", "cuda" or "cuda:N".
/// Throws ConfigError with a one-line message on a bad name or an
/// unavailable device.
torch::Device resolve_device(const std::string& name);

}  // namespace mnv2
