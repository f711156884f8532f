#include "data/transforms.h"

#include <mobilenetv2/util/splitmix64.h>
#include "common/errors.h"

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include <torch/torch.h>

#include <cmath>
#include <cstring>

namespace mnv2 {

namespace {

constexpr int kAttempts = 10;
double uniform(std::mt19937_64& rng, double low, double high) {
  return std::uniform_real_distribution<double>(low, high)(rng);
}

int random_int(std::mt19937_64& rng, int low, int high_inclusive) {
  return std::uniform_int_distribution<int>(low, high_inclusive)(rng);
}

}  // namespace

std::mt19937_64 sample_rng(uint64_t seed, int64_t epoch, int64_t index) {
  uint64_t state = splitmix64_at(seed, 0);
  state = splitmix64_at(state ^ static_cast<uint64_t>(epoch), 0);
  state = splitmix64_at(state ^ static_cast<uint64_t>(index), 0);
  return std::mt19937_64(state);
}

std::optional<cv::Rect> random_erase_box(int height,
                                         int width,
                                         double probability,
                                         std::mt19937_64& rng) {
  if (probability <= 0 || uniform(rng, 0.0, 1.0) >= probability) {
    return std::nullopt;
  }
  const double area = static_cast<double>(height) * width;
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    const double target = area * uniform(rng, 0.02, 0.33);
    const double ratio = std::exp(uniform(rng, std::log(0.3), std::log(3.3)));
    const int h = static_cast<int>(std::nearbyint(std::sqrt(target * ratio)));
    const int w = static_cast<int>(std::nearbyint(std::sqrt(target / ratio)));
    if (h >= height || w >= width || h < 1 || w < 1) {
      continue;
    }
    const int top = random_int(rng, 0, height - h);
    const int left = random_int(rng, 0, width - w);
    return cv::Rect(left, top, w, h);
  }
  return std::nullopt;
}

CropBox random_resized_crop_box(int height,
                                int width,
                                const TrainTransformOptions& options,
                                std::mt19937_64& rng) {
  const double area = static_cast<double>(height) * width;
  const double log_min = std::log(options.ratio_min);
  const double log_max = std::log(options.ratio_max);
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    const double target =
        area * uniform(rng, options.scale_min, options.scale_max);
    const double ratio = std::exp(uniform(rng, log_min, log_max));
    const int w = static_cast<int>(std::nearbyint(std::sqrt(target * ratio)));
    const int h = static_cast<int>(std::nearbyint(std::sqrt(target / ratio)));
    if (0 < w && w <= width && 0 < h && h <= height) {
      return {
          random_int(rng, 0, height - h), random_int(rng, 0, width - w), h, w};
    }
  }
  // Fallback to a central crop with the ratio clamped into range.
  const double in_ratio = static_cast<double>(width) / height;
  int w = width;
  int h = height;
  if (in_ratio < options.ratio_min) {
    h = static_cast<int>(std::nearbyint(w / options.ratio_min));
  } else if (in_ratio > options.ratio_max) {
    w = static_cast<int>(std::nearbyint(h * options.ratio_max));
  }
  return {(height - h) / 2, (width - w) / 2, h, w};
}

namespace {

// An 8-bit 3-channel matrix (a region of interest too) as an HWC tensor over
// its pixels, and a packed tensor back as a matrix (copied).
torch::Tensor view_of(const cv::Mat& image) {
  if (image.type() != CV_8UC3) {
    throw DataError("the transforms need 8-bit 3-channel images");
  }
  return torch::from_blob(image.data,
                          {image.rows, image.cols, 3},
                          {static_cast<int64_t>(image.step[0]), 3, 1},
                          torch::kUInt8);
}

cv::Mat mat_of(const torch::Tensor& hwc) {
  cv::Mat out(
      static_cast<int>(hwc.size(0)), static_cast<int>(hwc.size(1)), CV_8UC3);
  std::memcpy(out.data, hwc.data_ptr<uint8_t>(), hwc.numel());
  return out;
}

}  // namespace

int train_jpeg_reduction(int64_t width,
                         int64_t height,
                         const TrainTransformOptions& options) {
  // A crop of area a and aspect ratio r is sqrt(a r) x sqrt(a / r): its
  // shorter side is at least sqrt(a min(r, 1/r)).
  const double extreme = std::min(options.ratio_min, 1.0 / options.ratio_max);
  const double smallest_crop =
      std::sqrt(options.scale_min * static_cast<double>(width) *
                static_cast<double>(height) * std::min(extreme, 1.0));
  return largest_jpeg_reduction(smallest_crop, options.size);
}

cv::Mat train_transform(const cv::Mat& rgb,
                        const TrainTransformOptions& options,
                        std::mt19937_64& rng) {
  const auto box = random_resized_crop_box(rgb.rows, rgb.cols, options, rng);
  // The library's resampling, as evaluation's: antialiased bilinear, as
  // torchvision's (PIL's) RandomResizedCrop.
  cv::Mat out = mat_of(resize_image(
      view_of(rgb(cv::Rect(box.left, box.top, box.width, box.height))),
      options.size,
      options.size));
  if (uniform(rng, 0.0, 1.0) < options.hflip_prob) {
    cv::flip(out, out, 1);
  }
  return out;
}

cv::Mat eval_transform(const cv::Mat& rgb,
                       const EvalTransformOptions& options) {
  return mat_of(eval_resize_crop(view_of(rgb), options));
}

}  // namespace mnv2
