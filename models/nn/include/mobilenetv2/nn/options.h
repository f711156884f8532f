#pragma once

#include <mobilenetv2/nn/padding.h>

#include <torch/arg.h>

#include <array>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace mnv2 {

/// One row of the paper's architecture table: a stage of `repeats` inverted
/// residual blocks, the first of which has stride `stride`.
struct InvertedResidualSetting {
  int64_t expand_ratio;  ///< t
  int64_t out_channels;  ///< c (before the width multiplier)
  int64_t repeats;       ///< n
  int64_t stride;        ///< s
};

/// The paper's Table 2 (with the 14x14x64 erratum, which only concerns the
/// input size column): (t, c, n, s).
inline std::vector<InvertedResidualSetting>
default_inverted_residual_setting() {
  return {{1, 16, 1, 1},
          {6, 24, 2, 2},
          {6, 32, 3, 2},
          {6, 64, 4, 2},
          {6, 96, 3, 1},
          {6, 160, 3, 2},
          {6, 320, 1, 1}};
}

/// Options for `MobileNetV2`. Defaults are torchvision's `mobilenet_v2()`.
struct MobileNetV2Options {
  /// Number of output classes. Default: 1000.
  TORCH_ARG(int64_t, num_classes) = 1000;
  /// Width multiplier applied to every channel count. Default: 1.0.
  TORCH_ARG(double, width_mult) = 1.0;
  /// Channel counts are rounded to a multiple of this. Default: 8.
  TORCH_ARG(int64_t, round_nearest) = 8;
  /// Dropout probability before the classifier. Default: 0.2.
  TORCH_ARG(double, dropout) = 0.2;
  /// Architecture table. Default: the paper's.
  TORCH_ARG(std::vector<InvertedResidualSetting>,
            inverted_residual_setting) = default_inverted_residual_setting();
  /// BatchNorm epsilon. Default: 1e-5 (torch.nn.BatchNorm2d).
  TORCH_ARG(double, bn_eps) = 1e-5;
  /// BatchNorm momentum. Default: 0.1 (torch.nn.BatchNorm2d).
  TORCH_ARG(double, bn_momentum) = 0.1;
  /// Convolution padding. Default: torchvision's (symmetric). Keras weights
  /// need Padding::kTfSame (and bn_eps 1e-3).
  TORCH_ARG(Padding, padding) = Padding::kTorch;
};

}  // namespace mnv2
