#pragma once

#include <torch/types.h>

#include <string>

namespace mnv2 {

/// Process-wide settings that make LibTorch fast on CPU, applied once at
/// start-up: glibc malloc tuned to stop returning memory to the kernel (with
/// the defaults, oneDNN's large temporary buffers page-fault on every batch:
/// 20x slower on this machine), and explicit intra-op threads (LibTorch's
/// default was 1 here). `threads` <= 0 means all available cores.
void configure_runtime(int threads);

/// The number of threads `configure_runtime(0)` picks.
int default_thread_count();

/// "auto" (CUDA when available, else CPU), "cpu", "cuda" or "cuda:N".
/// Throws ConfigError with a one-line message on a bad name or an
/// unavailable device.
torch::Device resolve_device(const std::string& name);

}  // namespace mnv2
