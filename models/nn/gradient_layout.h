#pragma once

// Gradients in their parameter's strides (private to nn/'s .cpp files).

#include <torch/types.h>

#include <cstdint>

namespace mnv2 {

// A contiguous gradient of `param`'s shape, viewed with `param`'s strides
// where the two describe the same memory order and differ only in size-1
// dimensions (channels-last 1x1 and depthwise weights: the model keeps them
// in channels-last strides, see use_channels_last). DDP's Reducer warns
// about, and copies, a gradient whose strides differ from its parameter's.
inline torch::Tensor in_strides_of(const torch::Tensor& grad,
                                   const torch::Tensor& param) {
  if (grad.strides() == param.strides() || !grad.is_contiguous() ||
      grad.sizes() != param.sizes()) {
    return grad;
  }
  for (int64_t d = 0; d < param.dim(); ++d) {
    if (param.size(d) != 1 && param.stride(d) != grad.stride(d)) {
      return grad;
    }
  }
  return grad.as_strided(param.sizes(), param.strides());
}

}  // namespace mnv2
