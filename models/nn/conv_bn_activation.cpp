#include <mobilenetv2/nn/batchnorm_projection.h>
#include <mobilenetv2/nn/conv_bn_activation.h>
#include <mobilenetv2/nn/depthwise_conv.h>
#include <mobilenetv2/nn/expansion_conv_bn.h>
#include <mobilenetv2/nn/expansion_depthwise.h>
#include <mobilenetv2/nn/fused_batchnorm.h>
#include <mobilenetv2/nn/pointwise_conv.h>

#include <torch/nn/functional/padding.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/conv.h>

#include <algorithm>
#include <stdexcept>

namespace mnv2 {

namespace {

// Whether a unit trains through expansion_conv_bn_relu6: a 1x1 convolution
// that widens a large enough input, then BatchNorm in training and ReLU6.
bool trains_as_expansion(const ConvBNActivationOptions& options,
                         bool pads_input,
                         const torch::nn::BatchNorm2dImpl& bn,
                         const torch::Tensor& x) {
  return options.kernel_size() == 1 && options.stride() == 1 &&
         options.groups() == 1 && options.activation() && !pads_input &&
         fuses_training_batchnorm(bn) &&
         expansion_conv_bn_relu6_applies(x, options.out_channels());
}

}  // namespace

ConvBNActivationImpl::ConvBNActivationImpl(
    const ConvBNActivationOptions& options_)
    : options(options_) {
  pads_input_ = options.padding() == Padding::kTfSame && options.stride() > 1;
  const int64_t padding = pads_input_ ? 0 : (options.kernel_size() - 1) / 2;
  push_back(torch::nn::Conv2d(torch::nn::Conv2dOptions(options.in_channels(),
                                                       options.out_channels(),
                                                       options.kernel_size())
                                  .stride(options.stride())
                                  .padding(padding)
                                  .groups(options.groups())
                                  .bias(false)));
  push_back(torch::nn::BatchNorm2d(
      torch::nn::BatchNorm2dOptions(options.out_channels())
          .eps(options.bn_eps())
          .momentum(options.bn_momentum())));
  if (options.activation()) {
    push_back(torch::nn::ReLU6(torch::nn::ReLU6Options().inplace(true)));
  }
}

torch::Tensor ConvBNActivationImpl::forward(torch::Tensor x) {
  auto& conv = *ptr(0)->as<torch::nn::Conv2dImpl>();
  auto& bn = *ptr(1)->as<torch::nn::BatchNorm2dImpl>();
  // A large expansion (which never pads its input) as one function that
  // never writes the convolution's output; else the convolution, then
  // BatchNorm and ReLU6 (fused when training on CPU).
  if (trains_as_expansion(options, pads_input_, bn, x)) {
    count_training_batch(bn);
    return expansion_conv_bn_relu6(x,
                                   conv.weight,
                                   bn.weight,
                                   bn.bias,
                                   bn.running_mean,
                                   bn.running_var,
                                   *bn.options.momentum(),
                                   bn.options.eps());
  }
  return batchnorm_relu6(bn, convolve(x), options.activation());
}

torch::Tensor ConvBNActivationImpl::convolve(torch::Tensor x) {
  if (pads_input_) {
    x = pad_tf_same(x, options.kernel_size(), options.stride());
  }
  return training_conv2d(*ptr(0)->as<torch::nn::Conv2dImpl>(), x);
}

torch::Tensor training_conv2d(torch::nn::Conv2dImpl& conv,
                              const torch::Tensor& x) {
  // Our kernels where LibTorch's convolution is slow: a depthwise one with
  // its own backward, a 1x1 one as a matrix product. They take square
  // kernels, strides and zero padding without dilation or bias; any other
  // convolution stays LibTorch's.
  const auto& o = conv.options;
  const auto square = [](const torch::ExpandingArray<2>& a) {
    return a->at(0) == a->at(1);
  };
  const auto* padding = std::get_if<torch::ExpandingArray<2>>(&o.padding());
  const bool ours =
      !conv.bias.defined() && fused_batchnorm_enabled() && padding != nullptr &&
      square(o.kernel_size()) && square(o.stride()) && square(*padding) &&
      o.dilation()->at(0) == 1 && o.dilation()->at(1) == 1 &&
      std::holds_alternative<torch::enumtype::kZeros>(o.padding_mode());
  if (ours) {
    const int64_t kernel = o.kernel_size()->at(0);
    const int64_t stride = o.stride()->at(0);
    const int64_t pad = (*padding)->at(0);
    if (depthwise_conv2d_applies(x, o.groups(), kernel, stride, pad)) {
      return depthwise_conv2d(x, conv.weight, stride, pad);
    }
    if (pad == 0 && pointwise_conv2d_applies(
                        x, o.out_channels(), o.groups(), kernel, stride)) {
      return pointwise_conv2d(x, conv.weight);
    }
  }
  return conv.forward(x);
}

std::optional<torch::Tensor> train_expansion_then_depthwise(
    ConvBNActivationImpl& expansion,
    ConvBNActivationImpl& depthwise,
    const torch::Tensor& x) {
  auto& expansion_bn = *expansion.ptr(1)->as<torch::nn::BatchNorm2dImpl>();
  auto& depthwise_conv = *depthwise.ptr(0)->as<torch::nn::Conv2dImpl>();
  auto& depthwise_bn = *depthwise.ptr(1)->as<torch::nn::BatchNorm2dImpl>();
  const auto& e = expansion.options;
  const auto& d = depthwise.options;
  const bool pair =
      fused_batchnorm_enabled() &&
      trains_as_expansion(e, expansion.pads_input(), expansion_bn, x) &&
      d.groups() == e.out_channels() && d.in_channels() == e.out_channels() &&
      d.out_channels() == e.out_channels() && d.activation() &&
      !depthwise.pads_input() && !depthwise_conv.bias.defined() &&
      fuses_training_batchnorm(depthwise_bn) &&
      expansion_depthwise_applies(
          x, e.out_channels(), d.kernel_size(), d.stride());
  if (!pair) {
    return std::nullopt;
  }
  count_training_batch(expansion_bn);
  auto& expansion_conv = *expansion.ptr(0)->as<torch::nn::Conv2dImpl>();
  const auto y = expansion_depthwise(x,
                                     expansion_conv.weight,
                                     expansion_bn.weight,
                                     expansion_bn.bias,
                                     expansion_bn.running_mean,
                                     expansion_bn.running_var,
                                     *expansion_bn.options.momentum(),
                                     expansion_bn.options.eps(),
                                     depthwise_conv.weight,
                                     d.stride());
  return y;
}

torch::Tensor train_depthwise_bn_then_projection(
    ConvBNActivationImpl& depthwise,
    torch::nn::Conv2dImpl& projection,
    const torch::Tensor& z) {
  auto& bn = *depthwise.ptr(1)->as<torch::nn::BatchNorm2dImpl>();
  const auto& p = projection.options;
  const bool fused =
      fused_batchnorm_enabled() && depthwise.options.activation() &&
      fuses_training_batchnorm(bn) && !projection.bias.defined() &&
      projection.weight.scalar_type() == torch::kFloat &&
      p.kernel_size()->at(0) == 1 && p.kernel_size()->at(1) == 1 &&
      p.stride()->at(0) == 1 && p.stride()->at(1) == 1 && p.groups() == 1 &&
      p.in_channels() == z.size(1) &&
      batchnorm_relu6_projection_applies(z, p.out_channels());
  const auto* padding = std::get_if<torch::ExpandingArray<2>>(&p.padding());
  if (!fused || padding == nullptr || (*padding)->at(0) != 0 ||
      (*padding)->at(1) != 0) {
    return training_conv2d(
        projection, batchnorm_relu6(bn, z, depthwise.options.activation()));
  }
  count_training_batch(bn);
  return batchnorm_relu6_projection(z,
                                    bn.weight,
                                    bn.bias,
                                    bn.running_mean,
                                    bn.running_var,
                                    *bn.options.momentum(),
                                    bn.options.eps(),
                                    projection.weight);
}

torch::Tensor pad_tf_same(const torch::Tensor& x,
                          int64_t kernel,
                          int64_t stride) {
  const auto rows = tf_same_padding(x.size(-2), kernel, stride);
  const auto cols = tf_same_padding(x.size(-1), kernel, stride);
  return torch::constant_pad_nd(x, {cols[0], cols[1], rows[0], rows[1]});
}

}  // namespace mnv2
