#pragma once

// BatchNorm's running statistics for the fused training kernels (private to
// nn/'s .cpp files).

#include <torch/autograd.h>
#include <torch/types.h>

#include <cmath>
#include <cstdint>

namespace mnv2 {

// running = (1 - momentum) running + momentum batch, as BatchNorm2d's mul_
// then add_ round it (`batch` is fp32). On plain fp32 CPU statistics a loop
// over the channels instead of two operators that each cost more than the
// loop (52 layers per step at 48x48). `batch` holds the running
// statistics' number of floats.
inline void update_running_stats(torch::Tensor& running,
                                 const float* batch,
                                 double momentum) {
  torch::NoGradGuard no_grad;
  if (!running.device().is_cpu() || running.scalar_type() != torch::kFloat ||
      !running.is_contiguous()) {
    const auto values =
        torch::from_blob(const_cast<float*>(batch), {running.numel()});
    running.mul_(1 - momentum).add_(values.to(running.device()), momentum);
    return;
  }
  const auto keep = static_cast<float>(1 - momentum);
  const auto take = static_cast<float>(momentum);
  float* r = running.data_ptr<float>();
  for (int64_t c = 0; c < running.numel(); ++c) {
    r[c] = std::fma(take, batch[c], r[c] * keep);
  }
  // As the in-place operators would: a graph that saved it sees the change.
  torch::autograd::impl::bump_version(running);
}

inline void update_running_stats(torch::Tensor& running,
                                 const torch::Tensor& batch,
                                 double momentum) {
  if (batch.scalar_type() != torch::kFloat || !batch.is_contiguous() ||
      !batch.device().is_cpu() || running.numel() != batch.numel()) {
    torch::NoGradGuard no_grad;
    running.mul_(1 - momentum).add_(batch, momentum);
    return;
  }
  update_running_stats(running, batch.const_data_ptr<float>(), momentum);
}

}  // namespace mnv2
