#pragma once

// Which dtype a CPU training kernel of nn/ computes in (private to its .cpp
// files): the one autocast would give the layer, where the kernel has it.

#include <ATen/autocast_mode.h>
#include <torch/types.h>

#include <optional>

namespace mnv2 {

// bf16 (bf16 input, or fp32 under bf16 autocast) or fp32 outside autocast;
// nothing for fp16 autocast or other dtypes.
inline std::optional<torch::ScalarType> cpu_computation_dtype(
    const torch::Tensor& input) {
  const bool autocast = at::autocast::is_autocast_enabled(c10::DeviceType::CPU);
  if (input.scalar_type() == torch::kBFloat16 ||
      (autocast && input.scalar_type() == torch::kFloat &&
       at::autocast::get_autocast_dtype(c10::DeviceType::CPU) ==
           torch::kBFloat16)) {
    return torch::kBFloat16;
  }
  if (!autocast && input.scalar_type() == torch::kFloat) {
    return torch::kFloat;
  }
  return std::nullopt;
}

// Casts tensors to the dtype a kernel computes `input` in (the computation
// dtype, else the input's own), the tensor itself where it already has it:
// even a cast to the same type is a dispatch. Under autocast the gradient
// flows back through the cast, as autocast's does.
class ComputationCast {
 public:
  explicit ComputationCast(const torch::Tensor& input)
      : dtype_(cpu_computation_dtype(input).value_or(input.scalar_type())) {}
  torch::Tensor operator()(const torch::Tensor& t) const {
    return t.scalar_type() == dtype_ ? t : t.to(dtype_);
  }

 private:
  torch::ScalarType dtype_;
};

}  // namespace mnv2
