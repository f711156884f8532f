#include <mobilenetv2/preprocessing/preprocessing.h>
#include <mobilenetv2/util/data_error.h>

#include <ATen/Version.h>
#include <torch/torch.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <stdexcept>

namespace mnv2 {

std::string resize_policy_name(ResizePolicy policy) {
  return policy == ResizePolicy::kSquash ? "squash"
                                         : "shorter_side_center_crop";
}

ResizePolicy resize_policy_from_name(const std::string& name) {
  if (name == "shorter_side_center_crop") {
    return ResizePolicy::kShorterSideCenterCrop;
  }
  if (name == "squash") {
    return ResizePolicy::kSquash;
  }
  throw std::invalid_argument(
      "resize policy must be shorter_side_center_crop "
      "or squash, got '" +
      name + "'");
}

namespace {

std::atomic<int64_t> pixel_budget{kDefaultMaxImagePixels};

}  // namespace

void set_max_image_pixels(int64_t pixels) {
  if (pixels < 1) {
    throw std::invalid_argument("the pixel budget must be at least 1, got " +
                                std::to_string(pixels));
  }
  pixel_budget = pixels;
}

int64_t max_image_pixels() {
  return pixel_budget;
}

void check_resize_budget(int64_t height,
                         int64_t width,
                         const EvalTransformOptions& options,
                         const std::string& what) {
  if (options.policy == ResizePolicy::kSquash || height < 1 || width < 1) {
    return;  // squashed to the crop; empty images are refused elsewhere
  }
  // The resized image is bounded like a decoded one: an extreme aspect
  // ratio would otherwise make the shorter-side resize explode.
  const double size = options.resize_size;
  const double longer = static_cast<double>(std::max(height, width));
  const double shorter = static_cast<double>(std::min(height, width));
  const double pixels = size * std::floor(size * longer / shorter);
  if (pixels > static_cast<double>(max_image_pixels())) {
    throw DataError(
        what + ": " + std::to_string(height) + "x" + std::to_string(width) +
        " resized to a shorter side of " + std::to_string(options.resize_size) +
        " would be " + std::to_string(static_cast<int64_t>(pixels)) +
        " pixels, over the budget of " + std::to_string(max_image_pixels()) +
        " (--max-image-pixels)");
  }
}

std::pair<int, int> resized_shorter_side(int height, int width, int size) {
  if (height <= width) {
    return {size, static_cast<int>(static_cast<double>(size) * width / height)};
  }
  return {static_cast<int>(static_cast<double>(size) * height / width), size};
}

CropBox center_crop_box(int height,
                        int width,
                        int crop_height,
                        int crop_width) {
  if (crop_height > height || crop_width > width) {
    throw DataError("centre crop " + std::to_string(crop_height) + "x" +
                    std::to_string(crop_width) + " is larger than the image " +
                    std::to_string(height) + "x" + std::to_string(width));
  }
  const int top =
      static_cast<int>(std::nearbyint((height - crop_height) / 2.0));
  const int left = static_cast<int>(std::nearbyint((width - crop_width) / 2.0));
  return {top, left, crop_height, crop_width};
}

int largest_jpeg_reduction(double shorter, double needed) {
  for (const int reduction : {8, 4, 2}) {
    if (std::ceil(shorter / reduction) >= needed) {
      return reduction;
    }
  }
  return 1;
}

int eval_jpeg_reduction(int64_t width,
                        int64_t height,
                        const EvalTransformOptions& options) {
  const int needed = options.policy == ResizePolicy::kSquash
                         ? options.crop_size
                         : options.resize_size;
  return largest_jpeg_reduction(static_cast<double>(std::min(width, height)),
                                needed);
}

void check_rgb_image(const torch::Tensor& hwc, const std::string& what) {
  if (!hwc.defined() || hwc.dim() != 3) {
    throw DataError(what + " must be a height x width x 3 image tensor, got " +
                    (hwc.defined() ? std::to_string(hwc.dim()) + " dimensions"
                                   : std::string("an undefined tensor")));
  }
  if (hwc.scalar_type() != torch::kUInt8) {
    throw DataError(what + " must hold 8-bit pixels (uint8), got " +
                    std::string(c10::toString(hwc.scalar_type())));
  }
  if (hwc.size(2) != 3) {
    throw DataError(what + " must have 3 channels (RGB or BGR), got " +
                    std::to_string(hwc.size(2)) +
                    " (convert grayscale or drop alpha first)");
  }
  if (hwc.size(0) == 0 || hwc.size(1) == 0) {
    throw DataError(what + " is empty (" + std::to_string(hwc.size(0)) + "x" +
                    std::to_string(hwc.size(1)) + ")");
  }
  if (!hwc.device().is_cpu()) {
    throw DataError(what + " must be in CPU memory");
  }
}

namespace {

// torchvision's _do_native_uint8_resize_on_cpu for bilinear.
bool torchvision_resizes_uint8_natively() {
#if defined(__aarch64__)
  return true;
#else
  static const bool native = [] {
    const auto capability = at::get_cpu_capability();
    return capability == "AVX2" || capability == "AVX512";
  }();
  return native;
#endif
}

}  // namespace

torch::Tensor resize_image(const torch::Tensor& hwc,
                           int height,
                           int width,
                           Uint8Resampling resampling) {
  if (hwc.size(0) == height && hwc.size(1) == width) {
    return hwc.contiguous().clone();
  }
  const bool in_float = resampling == Uint8Resampling::kFloatRounded ||
                        (resampling == Uint8Resampling::kAsTorchvision &&
                         !torchvision_resizes_uint8_natively());
  // NCHW over HWC storage is channels_last, which ATen's uint8 antialiased
  // kernel is vectorised for.
  auto nchw = hwc.contiguous().permute({2, 0, 1}).unsqueeze(0);
  if (in_float) {
    nchw = nchw.to(torch::kFloat);
  }
  auto resized = torch::nn::functional::interpolate(
      nchw,
      torch::nn::functional::InterpolateFuncOptions()
          .size(std::vector<int64_t>{height, width})
          .mode(torch::kBilinear)
          .align_corners(false)
          .antialias(true));
  if (in_float) {
    // Bilinear weights are not negative, so no clamp (as torchvision).
    resized = resized.round_().to(torch::kUInt8);
  }
  return resized.squeeze(0).permute({1, 2, 0}).contiguous();
}

torch::Tensor eval_resize_crop(const torch::Tensor& hwc,
                               const EvalTransformOptions& options) {
  check_rgb_image(hwc, "the image");
  if (options.policy == ResizePolicy::kSquash) {
    return resize_image(
        hwc, options.crop_size, options.crop_size, options.resampling);
  }
  check_resize_budget(hwc.size(0), hwc.size(1), options, "the image");
  const auto [h, w] = resized_shorter_side(static_cast<int>(hwc.size(0)),
                                           static_cast<int>(hwc.size(1)),
                                           options.resize_size);
  const auto resized = resize_image(hwc, h, w, options.resampling);
  const auto box = center_crop_box(h, w, options.crop_size, options.crop_size);
  return resized.slice(0, box.top, box.top + box.height)
      .slice(1, box.left, box.left + box.width)
      .contiguous();
}

torch::Tensor normalize_image(const torch::Tensor& hwc,
                              ColorOrder order,
                              const Normalization& normalization) {
  check_rgb_image(hwc, "the image");
  auto chw = hwc.permute({2, 0, 1});
  if (order == ColorOrder::kBgr) {
    chw = chw.flip(0);
  }
  std::array<float, 3> mean{};
  std::array<float, 3> stddev{};
  for (size_t c = 0; c < 3; ++c) {
    mean[c] = static_cast<float>(normalization.mean[c]);
    stddev[c] = static_cast<float>(normalization.stddev[c]);
  }
  // Each step rounds to float as the loader's tables do:
  // (float(v) / 255.0f - mean) / std.
  return (chw.to(torch::kFloat) / 255.0f -
          torch::tensor(std::vector<float>(mean.begin(), mean.end()))
              .view({3, 1, 1})) /
         torch::tensor(std::vector<float>(stddev.begin(), stddev.end()))
             .view({3, 1, 1});
}

double normalized_max_abs(const Normalization& normalization) {
  double out = 0;
  for (size_t i = 0; i < 3; ++i) {
    const double mean = normalization.mean[i];
    const double stddev = normalization.stddev[i];
    out =
        std::max({out, std::abs(mean / stddev), std::abs((1 - mean) / stddev)});
  }
  return out;
}

}  // namespace mnv2
