#pragma once

#include <torch/types.h>

#include <cstdint>

namespace mnv2 {

/// An inverted residual block's expansion (1x1 convolution, training-mode
/// BatchNorm, ReLU6, as expansion_conv_bn_relu6) and the 3x3 depthwise
/// convolution after it (padding 1, stride 1 or 2, no bias), trained as one
/// function on the CPU in fp32, or in bf16 where the expansion alone trains
/// in bf16 (expansion_conv_bn_relu6_applies; under bf16 autocast the input
/// and the depthwise weight are cast, their gradients flowing back through
/// the casts). Returns the depthwise convolution's output; its BatchNorm
/// stays outside.
///
/// The forward is the two layers' (the expansion's moment trick, then
/// oneDNN's depthwise convolution). The backward never writes the
/// gradient of the expansion's output, the largest tensor of the block
/// (96 channels at 112x112 in MobileNetV2 1.0 at 224): for a few rows of
/// pixels at a time it gathers that gradient from the output's with the
/// depthwise kernel, masks it by the clamp and feeds it to the expansion's
/// block products while it is in cache, then takes the depthwise weight's
/// gradient per image while the image's expanded activations are still in
/// the last-level cache. Equal to expansion_conv_bn_relu6 followed by
/// torch::conv2d up to float rounding (bf16: the expanded activations and
/// their gradient rounded to bf16, as the unfused layers store them); updates
/// the expansion's running statistics as BatchNorm2d does.
torch::Tensor expansion_depthwise(const torch::Tensor& input,
                                  const torch::Tensor& conv_weight,
                                  const torch::Tensor& bn_weight,
                                  const torch::Tensor& bn_bias,
                                  torch::Tensor running_mean,
                                  torch::Tensor running_var,
                                  double momentum,
                                  double eps,
                                  const torch::Tensor& depthwise_weight,
                                  int64_t stride);

/// Whether expansion_depthwise takes this pair: where the expansion alone
/// would train through expansion_conv_bn_relu6 (fp32 outside autocast, or
/// bf16; expansion_conv_bn_relu6_applies) and the depthwise convolution is
/// 3x3 with stride 1 or 2 over `out_channels` channels.
bool expansion_depthwise_applies(const torch::Tensor& input,
                                 int64_t out_channels,
                                 int64_t depthwise_kernel,
                                 int64_t depthwise_stride);

}  // namespace mnv2
