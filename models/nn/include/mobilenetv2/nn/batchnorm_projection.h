#pragma once

#include <torch/types.h>

#include <cstdint>

namespace mnv2 {

/// Training-mode BatchNorm, ReLU6 and a 1x1 convolution without bias (an
/// inverted residual block's depthwise BatchNorm and its projection), as one
/// function on the CPU in fp32 or bf16 (bf16 input, or bf16 autocast),
/// channels last. Returns the convolution's output in the input's dtype; the
/// projection's own BatchNorm stays outside.
///
/// The normalised, clamped activations are never written: the forward
/// normalises a hundred-odd pixels at a time into cache and multiplies them
/// there, and the backward normalises them again for the weight's gradient
/// and takes the BatchNorm's sums from the activations' gradient while that
/// block of it is still in cache. Unfused, the activations are written once
/// and read twice, and their gradient is read twice, not once (144 channels
/// at 56x56 in MobileNetV2 1.0 at 224: 58 MB each at batch 32). Equal to
/// fused_batchnorm_relu6 followed by pointwise_conv2d up to float
/// rounding; updates the running statistics as BatchNorm2d does. In bf16 the
/// activations, their gradient and the products' weight are rounded to bf16
/// as the unfused bf16 layers store them; the sums stay fp32 and fp64.
torch::Tensor batchnorm_relu6_projection(const torch::Tensor& input,
                                         const torch::Tensor& bn_weight,
                                         const torch::Tensor& bn_bias,
                                         torch::Tensor running_mean,
                                         torch::Tensor running_var,
                                         double momentum,
                                         double eps,
                                         const torch::Tensor& conv_weight);

/// Whether batchnorm_relu6_projection takes this input: channels last on
/// the CPU, in a pass that records gradients, and a projection to
/// `out_channels` that our own products compute: in fp32 outside autocast
/// where pointwise_own_products_fp32 says so; in bf16 (bf16 input or bf16
/// autocast) with AVX512-BF16's products on a CPU without AMX, for the same
/// narrow shapes.
bool batchnorm_relu6_projection_applies(const torch::Tensor& input,
                                        int64_t out_channels);

}  // namespace mnv2
