#include <mobilenetv2/conv_bn_activation.h>

#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/conv.h>

namespace mnv2 {

ConvBNActivationImpl::ConvBNActivationImpl(
    const ConvBNActivationOptions& options_)
    : options(options_) {
  const int64_t padding = (options.kernel_size() - 1) / 2;
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

}  // namespace mnv2
