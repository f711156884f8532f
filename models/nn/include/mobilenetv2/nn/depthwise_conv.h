#pragma once

#include <torch/types.h>

#include <cstdint>

namespace mnv2 {

/// A depthwise convolution on the CPU (fp32, or bf16 under autocast or on
/// bf16 input) with its own backward where LibTorch 2.13's oneDNN takes a
/// slow path (docs/benchmarks.md):
/// - a strided layer's bf16 input gradient (MobileNetV2's four at 224: 360
///   ms of a 970 ms bf16 training step at batch 32 on an AVX512-BF16 CPU);
/// - the weight gradient of a layer whose output is at most 2 pixels high
///   or wide (the last stage at 48x48: 1-2.6 ms per layer in fp32 and 7-12
///   ms in bf16 at batch 64, for a few hundred thousand multiply-adds).
/// Both are computed channels last, in fp32 sums: each input pixel gathers
/// the gradient of the output pixels whose windows cover it; each kernel tap
/// sums its products over the images' pixels. A strided bf16 layer in
/// another layout takes an fp32 transposed convolution instead. The forward
/// and the other gradients are oneDNN's. Under bf16 autocast `input` and
/// `weight` are cast to bf16 (the weight's gradient flows back through the
/// cast, as autocast's). Equal to torch::conv2d in its dtype up to the
/// rounding of the gradients' sums.
torch::Tensor depthwise_conv2d(const torch::Tensor& input,
                               const torch::Tensor& weight,
                               int64_t stride,
                               int64_t padding);

/// Whether depthwise_conv2d is the faster way to compute this layer: a CPU
/// depthwise convolution (groups == channels, a square kernel) in a pass
/// that records gradients, fp32 outside autocast or bf16, where one of the
/// slow paths above would run.
bool depthwise_conv2d_applies(const torch::Tensor& input,
                              int64_t groups,
                              int64_t kernel,
                              int64_t stride,
                              int64_t padding);

}  // namespace mnv2
