#pragma once

#include <mobilenetv2/preprocessing/preprocessing.h>

#include <torch/types.h>

namespace mnv2 {

/// A loader batch ready for the model on `device`: 8-bit images are scaled
/// to [0, 1] and normalised there (ImageNet's mean and std unless given);
/// float images (already normalised) are only moved. Optionally
/// channels_last.
torch::Tensor normalize_images(const torch::Tensor& images,
                               const torch::Device& device,
                               bool channels_last = false,
                               const Normalization& normalization = {});

}  // namespace mnv2
