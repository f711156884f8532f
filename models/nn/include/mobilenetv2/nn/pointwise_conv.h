#pragma once

#include <torch/types.h>

#include <cstdint>

namespace mnv2 {

/// A 1x1, stride-1 convolution without bias on channels-last CPU input,
/// computed as one matrix product per pass: the input's pixels are the rows
/// of an [images x height x width, channels] matrix (a view, no copy), the
/// output is that matrix times the transposed [out, in] weight, and
/// LibTorch's autograd differentiates the product (two more products, for
/// the input and the weight). On the small feature maps of a 48x48 model
/// LibTorch 2.13's oneDNN convolution spends 1.6-4x longer on the same three
/// products in fp32, and up to 7x in bf16 (docs/benchmarks.md, per layer on
/// an AMX Xeon): a fixed cost per call. Under bf16 autocast, or on bf16
/// input, `input` and `weight` are cast to bf16 (the weight's gradient flows
/// back through the cast, as autocast's). The output is channels last, equal
/// to torch::conv2d up to the order of the products' sums.
torch::Tensor pointwise_conv2d(const torch::Tensor& input,
                               const torch::Tensor& weight);

/// Whether pointwise_conv2d is the faster way to compute this layer: a CPU
/// 1x1 convolution at stride 1 (groups 1, no padding) on channels-last input
/// in a pass that records gradients, fp32 outside autocast or bf16, with at
/// most pointwise_max_pixels_fp32() (bf16: kPointwiseMaxPixelsBf16) pixels
/// in all.
bool pointwise_conv2d_applies(const torch::Tensor& input,
                              int64_t groups,
                              int64_t kernel,
                              int64_t stride);

/// Above this many pixels (images x height x width) oneDNN's convolution is
/// as fast as the matrix products: in fp32 from the 56x56 layers at 224 and
/// batch 32; in bf16, where its AMX kernels are quicker, from 28x28 (Intel
/// Xeon with AMX, docs/benchmarks.md).
inline constexpr int64_t kPointwiseMaxPixels = 1 << 16;
inline constexpr int64_t kPointwiseMaxPixelsBf16 = 1 << 14;

/// The fp32 limit on this host: kPointwiseMaxPixels where LibTorch's fp32
/// matrix product is MKL's on an Intel CPU; else 0, the convolution for
/// every size. On an AMD EPYC (AVX-512) MKL's sgemm took 1.1-2.5x oneDNN's
/// time per 1x1 layer, and the whole step at 224 ran about 15% faster with
/// the convolution (docs/benchmarks.md).
int64_t pointwise_max_pixels_fp32();

}  // namespace mnv2
