#pragma once

#include <mobilenetv2/nn/mobilenet_v2.h>

#include <cstdint>
#include <vector>

namespace mnv2 {

/// A convolution with its BatchNorm folded in (inference only).
struct FoldedConv {
  torch::Tensor weight;  ///< [out, in / groups, k, k]
  torch::Tensor bias;    ///< [out]
  int64_t stride = 1;
  int64_t padding = 0;
  /// TensorFlow "SAME": the padding follows each input's size (`padding` is
  /// then 0); see mnv2::tf_same_padding.
  bool same_padding = false;
  int64_t groups = 1;
  bool relu6 = true;
};

/// The stem, each inverted residual and the last 1x1 conv.
struct FoldedBlock {
  std::vector<FoldedConv> convs;
  bool residual = false;
};

/// MobileNetV2 in inference form: what the TorchScript and ONNX exporters
/// write. Equal to the eager model in eval mode up to float rounding.
struct FoldedNetwork {
  std::vector<FoldedBlock> blocks;
  torch::Tensor fc_weight;  ///< [classes, last_channel]
  torch::Tensor fc_bias;    ///< [classes]
};

/// Folds every BatchNorm into the preceding convolution:
/// w' = w * gamma / sqrt(var + eps), b' = beta - mean * gamma / sqrt(var +
/// eps).
FoldedNetwork fold_batchnorm(const MobileNetV2& model);

/// The convolution with its bias (and TensorFlow SAME padding where it has
/// it), without the activation.
torch::Tensor apply_conv(const FoldedConv& conv, const torch::Tensor& x);

}  // namespace mnv2
