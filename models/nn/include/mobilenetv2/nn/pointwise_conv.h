#pragma once

#include <torch/types.h>

#include <cstdint>

namespace mnv2 {

/// A 1x1, stride-1 convolution without bias on channels-last CPU input,
/// computed as one matrix product per pass: the input's pixels are the rows
/// of an [images x height x width, channels] matrix (a view, no copy), the
/// output is that matrix times the transposed [out, in] weight, and one
/// autograd node computes both gradients as two more products. On the small
/// feature maps of a 48x48 model LibTorch 2.13's oneDNN convolution
/// spends 1.6-4x longer on the same three products in fp32, and up to 7x in
/// bf16 (docs/benchmarks.md, per layer on an AMX Xeon): a fixed cost per call.
/// Under bf16 autocast, or on bf16 input, `input` and `weight` are cast to bf16
/// (the weight's gradient flows back through the cast, as autocast's). The
/// output is channels last, equal to torch::conv2d up to the order of the
/// products' sums.
torch::Tensor pointwise_conv2d(const torch::Tensor& input,
                               const torch::Tensor& weight);

/// Whether pointwise_conv2d is the faster way to compute this layer: a CPU
/// 1x1 convolution at stride 1 (groups 1, no padding) to `out_channels` on
/// channels-last input in a pass that records gradients, fp32 outside
/// autocast or bf16, within the host's PointwiseLimits or, in fp32, one that
/// pointwise_own_products_fp32 takes (at any size).
bool pointwise_conv2d_applies(const torch::Tensor& input,
                              int64_t out_channels,
                              int64_t groups,
                              int64_t kernel,
                              int64_t stride);

/// The largest 1x1 layer the products take: pixels (images x height x
/// width) and multiply-adds (pixels x in x out channels) in the batch.
struct PointwiseLimits {
  int64_t max_pixels;
  int64_t max_multiply_adds;
};

/// fp32 where LibTorch's product is MKL's on an Intel CPU: up to the 56x56
/// layers at 224 and batch 32, above which oneDNN's convolution is as fast;
/// bf16, where oneDNN's AMX kernels are quicker, up to 28x28 (Intel Xeon
/// with AMX, docs/benchmarks.md).
inline constexpr PointwiseLimits kPointwiseLimitsFp32{1 << 16, INT64_MAX};
inline constexpr PointwiseLimits kPointwiseLimitsBf16{1 << 14, INT64_MAX};

/// fp32 where the product is MKL's on another CPU. On an AMD EPYC (AVX-512)
/// MKL's sgemm took 1.1-2.5x oneDNN's time per 1x1 layer from 9,216 pixels
/// up and on the 7x7 layers at 224 (over 10^8 multiply-adds each), but was
/// quicker on the 6x6 and smaller layers of a 48x48 model at batch 64, where
/// oneDNN's fixed cost per call dominates: that step ran about 6% faster
/// with them (docs/benchmarks.md).
inline constexpr PointwiseLimits kPointwiseLimitsFp32NotIntel{1 << 12, 1 << 26};

/// fp32 where LibTorch's products are not MKL's on an Intel CPU: our own
/// products (loops holding a tile of rows times up to 32 columns in
/// registers) for channel counts that are multiples of 8 with the narrow
/// one at most kPointwiseOwnMaxNarrowSide, at any size. Forward and both
/// gradients on an AMD EPYC (Zen 4, 2 threads) against oneDNN's
/// convolution: 1.57x at 32 -> 16 and 112x112, 0.96-1.14x on the 56x56
/// and 28x28 layers at 224 and batch 32, 1.16-1.66x on a 48x48 model's
/// layers at batch 64, but 0.71-0.92x where both sides are 64 or more
/// (docs/benchmarks.md).
inline constexpr int64_t kPointwiseOwnMaxNarrowSide = 32;
bool pointwise_own_products_fp32(int64_t in_channels, int64_t out_channels);

/// The fp32 limits on this host: one of the two above, or none (the
/// convolution for every size) where LibTorch has no MKL.
PointwiseLimits pointwise_limits_fp32();

}  // namespace mnv2
