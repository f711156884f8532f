#pragma once

#include <array>
#include <string>

namespace mnv2 {

/// Input normalisation of RGB in [0, 1]: (x - mean) / std, per channel. It
/// belongs to the weights: models trained with one need it at inference.
struct Normalization {
  std::array<double, 3> mean = {0.485, 0.456, 0.406};  ///< ImageNet's
  std::array<double, 3> stddev = {0.229, 0.224, 0.225};
  bool operator==(const Normalization&) const = default;
};

/// Keras applications' and TF-slim's: x / 127.5 - 1.
constexpr Normalization kInceptionNormalization{{0.5, 0.5, 0.5},
                                                {0.5, 0.5, 0.5}};

/// How evaluation sizes an image before the network.
enum class ResizePolicy {
  /// The shorter side to val_resize (aspect kept), then a centred val_crop
  /// square: torchvision's (TF-slim's central 87.5% crop is 256/224 of it).
  kShorterSideCenterCrop,
  /// The whole image to val_crop x val_crop, aspect not kept: Keras'
  /// `load_img(path, target_size=(224, 224))`, how Keras' weights are used.
  kSquash,
};

/// "shorter_side_center_crop" or "squash".
std::string resize_policy_name(ResizePolicy policy);
/// Throws std::invalid_argument for other names.
ResizePolicy resize_policy_from_name(const std::string& name);

}  // namespace mnv2
