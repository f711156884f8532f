#include <mobilenetv2/nn/conv_bn_activation.h>
#include <mobilenetv2/nn/dropout.h>
#include <mobilenetv2/nn/make_divisible.h>
#include <mobilenetv2/nn/mobilenet_v2.h>

#include <torch/nn/functional/pooling.h>
#include <torch/nn/init.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>

#include <algorithm>

namespace mnv2 {

namespace {
constexpr int64_t kStemChannels = 32;
constexpr int64_t kLastChannels = 1280;
constexpr int64_t kMinFeatureMapStride = 4;
}  // namespace

MobileNetV2Impl::MobileNetV2Impl(MobileNetV2Options options_)
    : options(std::move(options_)) {
  const auto& table = options.inverted_residual_setting();
  TORCH_CHECK(!table.empty(),
              "MobileNetV2: inverted_residual_setting must not be empty");
  TORCH_CHECK(options.width_mult() > 0,
              "MobileNetV2: width_mult must be positive, got ",
              options.width_mult());
  TORCH_CHECK(options.num_classes() > 0,
              "MobileNetV2: num_classes must be positive, got ",
              options.num_classes());
  TORCH_CHECK(options.dropout() >= 0 && options.dropout() < 1,
              "MobileNetV2: dropout must be in [0, 1), got ",
              options.dropout());
  const auto width = options.width_mult();
  const auto divisor = options.round_nearest();
  int64_t channels = make_divisible(kStemChannels * width, divisor);
  last_channel_ = make_divisible(kLastChannels * std::max(1.0, width), divisor);

  features = torch::nn::Sequential();
  features->push_back(
      ConvBNActivation(ConvBNActivationOptions(3, channels)
                           .stride(2)
                           .padding(options.padding())
                           .bn_eps(options.bn_eps())
                           .bn_momentum(options.bn_momentum())));
  layer_strides_.push_back(2);
  for (const auto& stage : table) {
    TORCH_CHECK(stage.repeats > 0 && stage.out_channels > 0,
                "MobileNetV2: every stage needs positive repeats and channels");
    const int64_t out = make_divisible(stage.out_channels * width, divisor);
    for (int64_t i = 0; i < stage.repeats; ++i) {
      const int64_t stride = i == 0 ? stage.stride : 1;
      features->push_back(InvertedResidual(
          InvertedResidualOptions(channels, out, stride, stage.expand_ratio)
              .padding(options.padding())
              .bn_eps(options.bn_eps())
              .bn_momentum(options.bn_momentum())));
      layer_strides_.push_back(stride);
      channels = out;
    }
  }
  features->push_back(
      ConvBNActivation(ConvBNActivationOptions(channels, last_channel_)
                           .kernel_size(1)
                           .bn_eps(options.bn_eps())
                           .bn_momentum(options.bn_momentum())));
  layer_strides_.push_back(1);
  register_module("features", features);

  classifier = torch::nn::Sequential(
      Dropout(options.dropout()),
      torch::nn::Linear(last_channel_, options.num_classes()));
  register_module("classifier", classifier);

  // A layer's output is a feature map when the next layer downsamples again.
  int64_t stride = 1;
  for (size_t i = 0; i < layer_strides_.size(); ++i) {
    stride *= layer_strides_[i];
    const bool last_at_stride =
        i + 1 == layer_strides_.size() || layer_strides_[i + 1] > 1;
    if (stride >= kMinFeatureMapStride && last_at_stride) {
      feature_map_layers_.push_back(i);
    }
  }
  initialize_weights();
}

void MobileNetV2Impl::initialize_weights() {
  torch::NoGradGuard no_grad;
  for (auto& module : modules(/*include_self=*/false)) {
    if (auto* conv = module->as<torch::nn::Conv2d>()) {
      torch::nn::init::kaiming_normal_(conv->weight, 0.0, torch::kFanOut);
      if (conv->bias.defined()) {
        torch::nn::init::zeros_(conv->bias);
      }
    } else if (auto* bn = module->as<torch::nn::BatchNorm2d>()) {
      torch::nn::init::ones_(bn->weight);
      torch::nn::init::zeros_(bn->bias);
    } else if (auto* linear = module->as<torch::nn::Linear>()) {
      torch::nn::init::normal_(linear->weight, 0.0, 0.01);
      torch::nn::init::zeros_(linear->bias);
    }
  }
}

void MobileNetV2Impl::reset_classifier(int64_t num_classes) {
  TORCH_CHECK(num_classes > 0,
              "MobileNetV2: num_classes must be positive, got ",
              num_classes);
  options.num_classes(num_classes);
  auto linear = torch::nn::Linear(last_channel_, num_classes);
  {
    torch::NoGradGuard no_grad;
    torch::nn::init::normal_(linear->weight, 0.0, 0.01);
    torch::nn::init::zeros_(linear->bias);
  }
  auto device = classifier->parameters().front().device();
  auto dtype = classifier->parameters().front().scalar_type();
  linear->to(device, dtype);
  classifier = replace_module(
      "classifier", torch::nn::Sequential(Dropout(options.dropout()), linear));
}

void MobileNetV2Impl::check_input(const torch::Tensor& x) const {
  TORCH_CHECK(x.dim() == 4 && x.size(1) == 3,
              "MobileNetV2 expects an input of shape [N, 3, H, W], got ",
              x.sizes());
}

torch::Tensor MobileNetV2Impl::forward_features(torch::Tensor x) {
  check_input(x);
  return features->forward(std::move(x));
}

torch::Tensor MobileNetV2Impl::forward_embedding(torch::Tensor x) {
  auto maps = forward_features(std::move(x));
  return torch::nn::functional::adaptive_avg_pool2d(
             maps, torch::nn::functional::AdaptiveAvgPool2dFuncOptions(1))
      .flatten(1);
}

torch::Tensor MobileNetV2Impl::forward_head(torch::Tensor embedding) {
  return classifier->forward(std::move(embedding));
}

torch::Tensor MobileNetV2Impl::forward(torch::Tensor x) {
  return forward_head(forward_embedding(std::move(x)));
}

std::vector<FeatureMap> MobileNetV2Impl::forward_feature_maps(torch::Tensor x) {
  check_input(x);
  std::vector<FeatureMap> maps;
  int64_t stride = 1;
  size_t layer = 0;
  size_t next = 0;
  for (auto it = features->begin();
       it != features->end() && next < feature_map_layers_.size();
       ++it, ++layer) {
    x = it->forward(x);
    stride *= layer_strides_[layer];
    if (layer == feature_map_layers_[next]) {
      maps.push_back({stride, x});
      ++next;
    }
  }
  return maps;
}

std::vector<int64_t> MobileNetV2Impl::feature_map_channels() const {
  std::vector<int64_t> channels;
  for (auto i : feature_map_layers_) {
    const auto& layer = features->ptr(i);
    if (const auto* block = layer->as<InvertedResidualImpl>()) {
      channels.push_back(block->options.out_channels());
    } else {
      channels.push_back(
          layer->as<ConvBNActivationImpl>()->options.out_channels());
    }
  }
  return channels;
}

void MobileNetV2Impl::pretty_print(std::ostream& stream) const {
  stream << "mnv2::MobileNetV2(num_classes=" << options.num_classes()
         << ", width_mult=" << options.width_mult()
         << ", last_channel=" << last_channel_
         << ", dropout=" << options.dropout();
  if (options.padding() != Padding::kTorch) {
    stream << ", padding=" << padding_name(options.padding());
  }
  if (options.bn_eps() != 1e-5) {
    stream << ", bn_eps=" << options.bn_eps();
  }
  stream << ")";
}

}  // namespace mnv2
