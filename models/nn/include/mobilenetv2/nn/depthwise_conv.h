#pragma once

#include <torch/types.h>

#include <cstdint>

namespace mnv2 {

/// A depthwise convolution on the CPU (fp32, or bf16 under autocast or on
/// bf16 input) with its own backward where LibTorch 2.13's oneDNN takes a
/// slow path (docs/benchmarks.md):
/// - a strided layer's bf16 input gradient (MobileNetV2's four at 224: 360
///   ms of a 970 ms bf16 training step at batch 32 on an AVX512-BF16 CPU);
/// - every weight gradient: in bf16 oneDNN's takes 2-3x its fp32 time at
///   224 (28-32 ms at 56x56 x 144 channels, where ours takes about 10); in
///   fp32 a layer's forward and backward took 0.74-0.90x as long with ours
///   at 112x112 and 56x56 (stride 1) on an AMD EPYC, and about as long on
///   the smaller ones;
/// - the weight gradient of a layer whose output is at most 2 pixels high
///   or wide (the last stage at 48x48: 1-2.6 ms per layer in fp32 and 7-12
///   ms in bf16 at batch 64, for a few hundred thousand multiply-adds).
/// They are computed channels last, in fp32 sums: each input pixel gathers
/// the gradient of the output pixels whose windows cover it; each kernel tap
/// sums its products over the images' pixels (3x3 kernels 16 channels at a
/// time, the nine sums in registers). A strided bf16 layer in another
/// layout takes an fp32 transposed convolution for its input gradient, and
/// a stride-1 bf16 layer oneDNN's forward convolution of the output's
/// gradient with the kernel turned by 180 degrees. The forward and the other
/// gradients are oneDNN's. Under bf16 autocast `input` and `weight` are cast
/// to bf16 (the weight's gradient flows back through the cast, as
/// autocast's). Equal to torch::conv2d in its dtype up to the rounding of
/// the gradients' sums.
torch::Tensor depthwise_conv2d(const torch::Tensor& input,
                               const torch::Tensor& weight,
                               int64_t stride,
                               int64_t padding);

/// Whether depthwise_conv2d is the faster way to compute this layer: a CPU
/// depthwise convolution (groups == channels, a square kernel) in a pass
/// that records gradients, bf16 (any stride), or fp32 outside autocast on
/// channels-last input or where the small-output slow path above would run.
bool depthwise_conv2d_applies(const torch::Tensor& input,
                              int64_t groups,
                              int64_t kernel,
                              int64_t stride,
                              int64_t padding);

}  // namespace mnv2
