#pragma once

#include <opencv2/core/mat.hpp>

#include <random>

namespace mnv2 {

/// torchvision's TrivialAugmentWide (31 magnitude bins): one of 14 operations
/// (identity, shear x/y, translate x/y, rotate, brightness, colour, contrast,
/// sharpness, posterize, solarize, autocontrast, equalize) at a random
/// magnitude and sign, on an 8-bit 3-channel image; geometric operations use
/// nearest-neighbour sampling and fill with black, as torchvision's default.
/// `bgr` gives the channel order (for the grey weights of colour/contrast).
void trivial_augment_wide(cv::Mat& image, bool bgr, std::mt19937_64& rng);

}  // namespace mnv2
