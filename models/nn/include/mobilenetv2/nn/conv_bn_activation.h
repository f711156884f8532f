#pragma once

#include <mobilenetv2/nn/options.h>

#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>

#include <cstdint>
#include <optional>

namespace mnv2 {

/// Options of a convolution + BatchNorm (+ ReLU6) unit; torchvision's
/// `Conv2dNormActivation` with `activation_layer=nn.ReLU6`.
struct ConvBNActivationOptions {
  ConvBNActivationOptions(int64_t in_channels, int64_t out_channels)
      : in_channels_(in_channels), out_channels_(out_channels) {}
  TORCH_ARG(int64_t, in_channels);
  TORCH_ARG(int64_t, out_channels);
  /// Square kernel size. Default: 3.
  TORCH_ARG(int64_t, kernel_size) = 3;
  /// Default: 1.
  TORCH_ARG(int64_t, stride) = 1;
  /// Default: 1 (a depthwise convolution has groups == in_channels).
  TORCH_ARG(int64_t, groups) = 1;
  /// Whether a ReLU6 follows the BatchNorm. Default: true.
  TORCH_ARG(bool, activation) = true;
  TORCH_ARG(double, bn_eps) = 1e-5;
  TORCH_ARG(double, bn_momentum) = 0.1;
  /// Default: symmetric, as torchvision. With Padding::kTfSame a strided
  /// convolution pads in forward() from the input's size; with stride 1 the
  /// two agree (odd kernels), so the convolution pads symmetrically.
  TORCH_ARG(Padding, padding) = Padding::kTorch;
};

/// Conv2d (no bias, "same" padding) -> BatchNorm2d -> ReLU6, as a Sequential so
/// that the parameters are named `0.weight`, `1.weight`, ... like
/// torchvision's.
class ConvBNActivationImpl : public torch::nn::SequentialImpl {
 public:
  explicit ConvBNActivationImpl(const ConvBNActivationOptions& options);
  /// A concrete forward so the unit can sit inside another Sequential.
  torch::Tensor forward(torch::Tensor x);
  /// The convolution alone (forward() without the BatchNorm and ReLU6), as
  /// a training step wants it (training_conv2d), the input padded where
  /// forward() pads it.
  torch::Tensor convolve(torch::Tensor x);
  /// Whether forward() pads the input itself (TF "SAME" with stride > 1).
  bool pads_input() const {
    return pads_input_;
  }
  ConvBNActivationOptions options;

 private:
  bool pads_input_ = false;
};
TORCH_MODULE(ConvBNActivation);

/// `conv` applied to `x` as a training step wants it: through
/// depthwise_conv2d or pointwise_conv2d where one applies (a bias-free
/// convolution with square kernel and stride, zero padding, no dilation) and
/// the fast paths are on (set_fused_batchnorm_enabled), else through
/// LibTorch's Conv2d.
torch::Tensor training_conv2d(torch::nn::Conv2dImpl& conv,
                              const torch::Tensor& x);

/// An expansion unit and the depthwise unit's convolution after it applied
/// to `x` as a training step wants them: through expansion_depthwise where
/// the fast paths are on (set_fused_batchnorm_enabled) and
/// expansion_depthwise_applies, nothing where they do not. Returns the
/// depthwise convolution's output, before its BatchNorm.
std::optional<torch::Tensor> train_expansion_then_depthwise(
    ConvBNActivationImpl& expansion,
    ConvBNActivationImpl& depthwise,
    const torch::Tensor& x);

/// A depthwise unit's BatchNorm and ReLU6 and the 1x1 projection after them,
/// applied to the depthwise convolution's output `z` as a training step
/// wants them: through batchnorm_relu6_projection where the fast paths are
/// on and it applies, else the unit's BatchNorm and ReLU6 (fused where they
/// apply), then training_conv2d.
torch::Tensor train_depthwise_bn_then_projection(
    ConvBNActivationImpl& depthwise,
    torch::nn::Conv2dImpl& projection,
    const torch::Tensor& z);

/// `x` padded as TensorFlow's "SAME" pads a `kernel` x `kernel`
/// convolution of this stride (the extra row and column after).
torch::Tensor pad_tf_same(const torch::Tensor& x,
                          int64_t kernel,
                          int64_t stride);

}  // namespace mnv2
