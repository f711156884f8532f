#pragma once

#include <torch/types.h>

#include <cstdint>

namespace mnv2 {

/// A strided depthwise convolution of bf16 activations on the CPU with its
/// own input gradient: LibTorch 2.13's oneDNN takes a slow path for a strided
/// depthwise convolution's bf16 backward-data (MobileNetV2's four of them:
/// 360 ms of a 970 ms bf16 training step at batch 32 and 224 on an
/// AVX512-BF16 CPU; docs/benchmarks.md). Channels last, each input pixel
/// gathers the gradient of the output pixels whose windows cover it, in
/// fp32, and is written once as bf16 (about 17 ms for the four); other
/// layouts take an fp32 transposed convolution. The forward and the weight
/// gradient stay oneDNN's bf16 ones. `input` and `weight` are cast to bf16
/// (the weight's gradient flows back through the cast, as autocast's).
/// Equal to torch::conv2d in bf16 up to bf16 rounding of the input gradient.
torch::Tensor strided_depthwise_bf16(const torch::Tensor& input,
                                     const torch::Tensor& weight,
                                     int64_t stride,
                                     int64_t padding);

/// Whether strided_depthwise_bf16 is the better way to compute this layer:
/// a CPU depthwise convolution (groups == channels) with stride > 1 whose
/// input is bf16 or becomes bf16 under CPU autocast, in a pass that records
/// gradients.
bool strided_depthwise_bf16_applies(const torch::Tensor& input,
                                    int64_t groups,
                                    int64_t stride);

}  // namespace mnv2
