#include <mobilenetv2/nn/conv_bn_activation.h>
#include <mobilenetv2/nn/fused_batchnorm.h>
#include <mobilenetv2/nn/inverted_residual.h>

#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/conv.h>

#include <cmath>

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
  // The expansion and depthwise units, then the projection (a matrix product
  // where LibTorch's 1x1 convolution is slow) and its BatchNorm (fused when
  // training on CPU).
  auto y = x;
  size_t first = 0;
  if (options.expand_ratio() != 1) {
    // The expansion and the depthwise convolution as one where the training
    // step fuses them.
    if (auto pair = train_expansion_then_depthwise(
            *conv->ptr(0)->as<ConvBNActivationImpl>(),
            *conv->ptr(1)->as<ConvBNActivationImpl>(),
            x)) {
      y = *pair;
      first = 2;
    }
  }
  auto unit = conv->begin() + static_cast<std::ptrdiff_t>(first);
  for (size_t i = first; i + 2 < conv->size(); ++i, ++unit) {
    y = unit->forward(y);
  }
  y = training_conv2d(*conv->ptr(conv->size() - 2)->as<torch::nn::Conv2dImpl>(),
                      y);
  y = batchnorm_relu6(
      *conv->ptr(conv->size() - 1)->as<torch::nn::BatchNorm2dImpl>(), y, false);
  return use_residual_ ? x + y : y;
}

void InvertedResidualImpl::pretty_print(std::ostream& stream) const {
  stream << "mnv2::InvertedResidual(" << options.in_channels() << ", "
         << options.out_channels() << ", stride=" << options.stride()
         << ", expand_ratio=" << options.expand_ratio()
         << ", residual=" << (use_residual_ ? "true" : "false") << ")";
}

}  // namespace mnv2
