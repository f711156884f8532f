#pragma once

#include <mobilenetv2/preprocessing/preprocessing.h>

#include <opencv2/core/mat.hpp>

#include <cstdint>
#include <optional>
#include <random>
#include <utility>

namespace mnv2 {

/// Training augmentation; defaults are torchvision's ImageNet recipe.
struct TrainTransformOptions {
  int size = 224;
  double scale_min = 0.08;
  double scale_max = 1.0;
  double ratio_min = 3.0 / 4.0;
  double ratio_max = 4.0 / 3.0;
  double hflip_prob = 0.5;
  /// TrivialAugmentWide after the flip (applied by the loader).
  bool trivial_augment = false;
  /// Applied by the loader on the normalised batch (see random_erase_box).
  double random_erase_prob = 0.0;
};

/// The random engine of one sample's augmentation, from the run's seed, the
/// epoch and the sample's dataset index only (so not from the worker that
/// loads it). The three are mixed by SplitMix64's finaliser into one seed:
/// std::seed_seq took 11 us a sample here, a fifth of loading a digit.
std::mt19937_64 sample_rng(uint64_t seed, int64_t epoch, int64_t index);

/// torchvision's RandomResizedCrop.get_params: up to ten tries of a random
/// area fraction and log-uniform aspect ratio, then the centre-crop fallback.
CropBox random_resized_crop_box(int height,
                                int width,
                                const TrainTransformOptions& options,
                                std::mt19937_64& rng);

/// torchvision's RandomErasing.get_params (scale 0.02-0.33, ratio 0.3-3.3,
/// ten tries) drawn with probability `probability`; nullopt for no erasing.
/// Like torchvision after Normalize, the loader fills the box with 0.
std::optional<cv::Rect> random_erase_box(int height,
                                         int width,
                                         double probability,
                                         std::mt19937_64& rng);

/// Crop then resize to size x size (mnv2::resize_image: antialiased bilinear,
/// as evaluation and torchvision), then flip (channel order is kept).
cv::Mat train_transform(const cv::Mat& rgb,
                        const TrainTransformOptions& options,
                        std::mt19937_64& rng);

/// Resize the shorter side then centre-crop, or squash to the crop size, as
/// the policy says (channel order is kept): mnv2::eval_resize_crop, the
/// library's evaluation geometry, on the matrix's pixels.
cv::Mat eval_transform(const cv::Mat& rgb, const EvalTransformOptions& options);

/// The same for training: even the smallest crop RandomResizedCrop can draw
/// (scale_min of the area, at the most extreme aspect ratio) keeps at least
/// `size` pixels on its shorter side. The crop is then drawn on the reduced
/// image.
int train_jpeg_reduction(int64_t width,
                         int64_t height,
                         const TrainTransformOptions& options);

}  // namespace mnv2
