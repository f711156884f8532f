#pragma once

#include <mobilenetv2/nn/inverted_residual.h>
#include <mobilenetv2/nn/options.h>

#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>

#include <cstdint>
#include <vector>

namespace mnv2 {

/// A feature map of the backbone and its stride relative to the input.
struct FeatureMap {
  int64_t stride;
  torch::Tensor tensor;
};

/// MobileNetV2 (Sandler et al., 2018) with torchvision's exact layout: the
/// parameter and buffer names are torchvision's state_dict keys
/// (`features.0.0.weight` ... `classifier.1.bias`), so weights move between
/// the two without conversion.
class MobileNetV2Impl : public torch::nn::Module {
 public:
  explicit MobileNetV2Impl(MobileNetV2Options options = {});

  /// Logits, [N, num_classes].
  torch::Tensor forward(torch::Tensor x);
  /// The last feature map before pooling, [N, last_channel, H/32, W/32].
  torch::Tensor forward_features(torch::Tensor x);
  /// The pooled embedding, [N, last_channel] (1280 at width <= 1.0).
  torch::Tensor forward_embedding(torch::Tensor x);
  /// Classifier on a pooled embedding: dropout then linear.
  torch::Tensor forward_head(torch::Tensor embedding);
  /// For detection / segmentation heads: from one pass, the output of the last
  /// layer at each stride >= 4 (4, 8, 16, 32 for the default table), in order.
  std::vector<FeatureMap> forward_feature_maps(torch::Tensor x);
  /// Channel counts of the maps `forward_feature_maps` returns, same order.
  std::vector<int64_t> feature_map_channels() const;

  /// Replaces the classifier with a freshly initialised one (fine-tuning).
  void reset_classifier(int64_t num_classes);

  int64_t last_channel() const {
    return last_channel_;
  }
  void pretty_print(std::ostream& stream) const override;

  MobileNetV2Options options;
  torch::nn::Sequential features{nullptr};
  torch::nn::Sequential classifier{nullptr};

 private:
  void check_input(const torch::Tensor& x) const;
  void initialize_weights();

  int64_t last_channel_ = 0;
  /// Stride of the input of each `features` layer relative to the image, and
  /// the stride the layer applies.
  std::vector<int64_t> layer_strides_;
  /// Indices into `features` whose outputs are the feature maps.
  std::vector<size_t> feature_map_layers_;
};
TORCH_MODULE(MobileNetV2);

}  // namespace mnv2
