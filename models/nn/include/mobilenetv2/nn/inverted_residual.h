#pragma once

#include <mobilenetv2/nn/options.h>

#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>

#include <cstdint>

namespace mnv2 {

/// Options of the MobileNetV2 bottleneck block.
struct InvertedResidualOptions {
  InvertedResidualOptions(int64_t in_channels,
                          int64_t out_channels,
                          int64_t stride,
                          int64_t expand_ratio)
      : in_channels_(in_channels),
        out_channels_(out_channels),
        stride_(stride),
        expand_ratio_(expand_ratio) {}
  TORCH_ARG(int64_t, in_channels);
  TORCH_ARG(int64_t, out_channels);
  /// 1 or 2, applied by the depthwise convolution.
  TORCH_ARG(int64_t, stride);
  /// t: hidden channels = round(in_channels * t); t = 1 skips the expansion.
  TORCH_ARG(int64_t, expand_ratio);
  TORCH_ARG(double, bn_eps) = 1e-5;
  TORCH_ARG(double, bn_momentum) = 0.1;
  /// Padding of the depthwise convolution (see ConvBNActivationOptions).
  TORCH_ARG(Padding, padding) = Padding::kTorch;
};

/// Inverted residual with linear bottleneck (Sandler et al., 2018):
/// 1x1 expand + BN + ReLU6 (unless t = 1) -> 3x3 depthwise + BN + ReLU6 ->
/// 1x1 linear projection + BN, plus the input when stride is 1 and the channel
/// counts agree. Layers live in `conv`, named as torchvision names them.
class InvertedResidualImpl : public torch::nn::Module {
 public:
  explicit InvertedResidualImpl(const InvertedResidualOptions& options);

  torch::Tensor forward(torch::Tensor x);
  bool uses_residual() const {
    return use_residual_;
  }
  void pretty_print(std::ostream& stream) const override;

  InvertedResidualOptions options;
  torch::nn::Sequential conv{nullptr};

 private:
  bool use_residual_;
};
TORCH_MODULE(InvertedResidual);

}  // namespace mnv2
