#include <mobilenetv2/nn/conv_bn_activation.h>
#include <mobilenetv2/nn/fused_batchnorm.h>
#include <mobilenetv2/nn/inverted_residual.h>

#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/conv.h>

#include <cmath>
#include <optional>

namespace mnv2 {

InvertedResidualImpl::InvertedResidualImpl(
    const InvertedResidualOptions& options_)
    : options(options_) {
  TORCH_CHECK(options.stride() == 1 || options.stride() == 2,
              "InvertedResidual: stride must be 1 or 2, got ",
              options.stride());
  TORCH_CHECK(options.expand_ratio() >= 1,
              "InvertedResidual: expand_ratio must be >= 1, got ",
              options.expand_ratio());
  // Python's round() on an integer product is exact, so this equals
  // torchvision's int(round(inp * expand_ratio)).
  const int64_t hidden = options.in_channels() * options.expand_ratio();
  use_residual_ =
      options.stride() == 1 && options.in_channels() == options.out_channels();

  conv = torch::nn::Sequential();
  if (options.expand_ratio() != 1) {
    conv->push_back(
        ConvBNActivation(ConvBNActivationOptions(options.in_channels(), hidden)
                             .kernel_size(1)
                             .bn_eps(options.bn_eps())
                             .bn_momentum(options.bn_momentum())));
  }
  conv->push_back(ConvBNActivation(ConvBNActivationOptions(hidden, hidden)
                                       .stride(options.stride())
                                       .groups(hidden)
                                       .padding(options.padding())
                                       .bn_eps(options.bn_eps())
                                       .bn_momentum(options.bn_momentum())));
  conv->push_back(torch::nn::Conv2d(
      torch::nn::Conv2dOptions(hidden, options.out_channels(), 1).bias(false)));
  conv->push_back(torch::nn::BatchNorm2d(
      torch::nn::BatchNorm2dOptions(options.out_channels())
          .eps(options.bn_eps())
          .momentum(options.bn_momentum())));
  register_module("conv", conv);
}

torch::Tensor InvertedResidualImpl::forward(torch::Tensor x) {
  // The units up to the depthwise convolution, the depthwise unit's
  // BatchNorm and ReLU6 with the projection (fused when training on CPU
  // where our products compute the projection), then the projection's
  // BatchNorm (fused when training on CPU).
  const size_t depthwise = conv->size() - 3;
  auto& depthwise_unit = *conv->ptr(depthwise)->as<ConvBNActivationImpl>();
  std::optional<torch::Tensor> z;
  if (options.expand_ratio() != 1) {
    // The expansion and the depthwise convolution as one where the training
    // step fuses them.
    z = train_expansion_then_depthwise(
        *conv->ptr(0)->as<ConvBNActivationImpl>(), depthwise_unit, x);
  }
  if (!z) {
    auto y = x;
    auto unit = conv->begin();
    for (size_t i = 0; i < depthwise; ++i, ++unit) {
      y = unit->forward(y);
    }
    z = depthwise_unit.convolve(y);
  }
  auto y = train_depthwise_bn_then_projection(
      depthwise_unit,
      *conv->ptr(depthwise + 1)->as<torch::nn::Conv2dImpl>(),
      *z);
  y = batchnorm_relu6(
      *conv->ptr(depthwise + 2)->as<torch::nn::BatchNorm2dImpl>(), y, false);
  return use_residual_ ? x + y : y;
}

void InvertedResidualImpl::pretty_print(std::ostream& stream) const {
  stream << "mnv2::InvertedResidual(" << options.in_channels() << ", "
         << options.out_channels() << ", stride=" << options.stride()
         << ", expand_ratio=" << options.expand_ratio()
         << ", residual=" << (use_residual_ ? "true" : "false") << ")";
}

}  // namespace mnv2
