#pragma once

#include <torch/types.h>

#include <cstdint>

namespace mnv2 {

/// A 1x1 convolution (no bias) followed by training-mode BatchNorm and
/// ReLU6 on the CPU in fp32 or bf16, computed without ever writing the
/// convolution's output: MobileNetV2's expansion layers, whose output is six
/// times their input.
///
/// The convolution is linear, so the BatchNorm's statistics of its output
/// x = W u follow from the input's: mean W mean(u), variance the diagonal of
/// W cov(u) W^T. The BatchNorm then folds into the convolution, and the
/// forward writes only the clamped output, through oneDNN's convolution
/// with a clamp (LibTorch's convolution and a clamp where LibTorch has no
/// oneDNN). The backward reads the output's gradient once: per block of
/// pixels that stays in cache it masks it by the clamp (g) and takes sum(g),
/// g^T u and g (scale W); the BatchNorm's and the weight's gradients follow
/// from those sums and cov(u), and the input's gradient is finished by a
/// pass over the small input, u times an in x in matrix.
///
/// For an expansion by 6 this moves about half the memory of a convolution
/// then fused_batchnorm_relu6. Equal to torch::conv2d, torch::batch_norm
/// (training) and torch::clamp(0, 6) up to float rounding (an output within
/// rounding of 0 or 6 may clamp the other way); updates the running
/// statistics as BatchNorm2d does (unbiased variance, `momentum`).
/// Channels-last input avoids a copy; the output is channels last.
///
/// On bf16 activations (a bf16 input, or fp32 under bf16 autocast, which is
/// cast) the convolution runs in bf16 with the folded weight rounded to
/// bf16 and the output and the input's gradient are bf16; the statistics,
/// the backward's products and the parameters' gradients (fp32, as the
/// parameters) are computed in fp32 and fp64 from the bf16 values.
torch::Tensor expansion_conv_bn_relu6(const torch::Tensor& input,
                                      const torch::Tensor& conv_weight,
                                      const torch::Tensor& bn_weight,
                                      const torch::Tensor& bn_bias,
                                      torch::Tensor running_mean,
                                      torch::Tensor running_var,
                                      double momentum,
                                      double eps);

/// Whether expansion_conv_bn_relu6 is the faster way to train this layer: a
/// CPU fp32 channels-last input (outside autocast), or bf16 activations
/// with input channels a multiple of 8 on a CPU with native bf16 but no AMX
/// (whose bf16 products would outrun the fp32 ones here), of at least
/// expansion_min_pixels(in_channels) pixels in the batch, in a pass that
/// records gradients, to a 1x1 convolution that widens it at least
/// kExpansionMinRatio times. The input's covariance costs in_channels^2 per
/// pixel against in_channels * out_channels for the convolution, and on
/// small maps the fixed cost of the small products outweighs the memory
/// saved (docs/benchmarks.md: 7x7 at batch 32 was 0.7x).
bool expansion_conv_bn_relu6_applies(const torch::Tensor& input,
                                     int64_t out_channels);

inline constexpr int64_t kExpansionMinRatio = 4;

/// The least pixels where the backward's block products are fast: MKL's on
/// an Intel CPU, or elsewhere ours, which take in_channels a multiple of 8
/// (MobileNetV2's 16, 24 and 32 at the big resolutions).
inline constexpr int64_t kExpansionMinPixels = 1 << 14;

/// The least pixels where they are MKL's on another CPU: slow on an AMD
/// EPYC, where a 48x48 model's 24x24 expansion at batch 64 (36,864 pixels)
/// made the step about 4% slower with them, and the 28x28 ones at 224
/// (25,088) gained nothing (docs/benchmarks.md).
inline constexpr int64_t kExpansionMinPixelsSlowProducts = 1 << 16;

/// This host's least for an input of `in_channels`: one of the two above.
int64_t expansion_min_pixels(int64_t in_channels);

}  // namespace mnv2
