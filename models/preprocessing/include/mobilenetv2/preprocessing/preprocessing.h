#pragma once

// The evaluation preprocessing of an image, in LibTorch operations: what
// mnv2::ImageClassifier, mnv2-eval and training's validation pass all apply.

#include <torch/types.h>

#include <array>
#include <cstdint>
#include <string>
#include <utility>

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

/// The largest |value| a normalised pixel can take: the input range int8
/// networks quantize.
double normalized_max_abs(const Normalization& normalization);

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

/// The channel order of an 8-bit image: RGB (PIL, most decoders) or BGR
/// (OpenCV's cv::Mat).
enum class ColorOrder { kRgb, kBgr };

/// How 8-bit pixels are resampled. torchvision's v2 Resize uses ATen's uint8
/// kernel where ATen runs its AVX2 or AVX-512 kernels, and on ARM64; on other
/// CPUs (x86 without AVX2, or ATEN_CPU_CAPABILITY=default) it resizes in
/// float and rounds half to even, which moves some pixels by one grey level.
enum class Uint8Resampling {
  kAsTorchvision,  // as torchvision does on this CPU
  kUint8Kernel,    // ATen's uint8 kernel
  kFloatRounded,   // in float, rounded half to even
};

/// Evaluation geometry: resize the shorter side to `resize_size`, centre-crop
/// `crop_size` (torchvision's 256/224; the v2 weights use 232/224), or
/// squash the whole image to crop_size x crop_size.
struct EvalTransformOptions {
  int resize_size = 256;
  int crop_size = 224;
  ResizePolicy policy = ResizePolicy::kShorterSideCenterCrop;
  Uint8Resampling resampling = Uint8Resampling::kAsTorchvision;
};

/// A crop rectangle in pixels, as torchvision's (top, left, height, width).
struct CropBox {
  int top;
  int left;
  int height;
  int width;
  bool operator==(const CropBox&) const = default;
};

/// PIL's default decompression-bomb limit (Image.MAX_IMAGE_PIXELS).
constexpr int64_t kDefaultMaxImagePixels = 178956970;

/// The pixel budget of this process (default kDefaultMaxImagePixels): an
/// image whose header declares more pixels (width x height) is refused
/// before it is decoded (mobilenetv2/vision/image_decode.h), and one whose
/// evaluation resize would make more is refused before resizing
/// (eval_resize_crop: a 1 x 200000 strip resized to a shorter side of 256
/// is 13 billion pixels). Throws std::invalid_argument for a budget under 1.
void set_max_image_pixels(int64_t pixels);
int64_t max_image_pixels();

/// Throws DataError, naming `what`, when the evaluation resize of a `height`
/// x `width` image would exceed the pixel budget (eval_resize_crop calls it;
/// mnv2::read_image too, so that the error names the file).
void check_resize_budget(int64_t height,
                         int64_t width,
                         const EvalTransformOptions& options,
                         const std::string& what);

/// torchvision's Resize(int): (height, width) with the shorter side `size`
/// and the longer side truncated as int(size * long / short).
std::pair<int, int> resized_shorter_side(int height, int width, int size);

/// torchvision's CenterCrop box (offsets rounded half to even, as Python's
/// round()). Throws DataError when the crop is larger than the image.
CropBox center_crop_box(int height, int width, int crop_height, int crop_width);

/// The largest libjpeg reduction (8, 4, 2, else 1) that keeps a side of
/// `shorter` pixels at least `needed` (libjpeg rounds reduced sizes up).
int largest_jpeg_reduction(double shorter, double needed);

/// The libjpeg reduction (1, 2, 4 or 8) a `width` x `height` JPEG can be
/// decoded at for evaluation: the shorter side still at least the resize
/// target (resize_size, or crop_size when squashing), so that the resize only
/// shrinks, as it would from the full image.
int eval_jpeg_reduction(int64_t width,
                        int64_t height,
                        const EvalTransformOptions& options);

/// Resizes an 8-bit height x width x 3 image with antialiased bilinear
/// interpolation: torchvision's resize of uint8 tensors (antialias=True) on
/// this CPU, within one grey level of PIL's bilinear resize. Returns a new
/// contiguous uint8 tensor.
torch::Tensor resize_image(
    const torch::Tensor& hwc,
    int height,
    int width,
    Uint8Resampling resampling = Uint8Resampling::kAsTorchvision);

/// The evaluation geometry (resize then centre crop, or squash) of an 8-bit
/// height x width x 3 image; channel order is kept. Throws DataError for an
/// image that is not 8-bit HWC with 3 channels, is empty, or whose resize
/// would exceed the pixel budget.
torch::Tensor eval_resize_crop(const torch::Tensor& hwc,
                               const EvalTransformOptions& options);

/// An 8-bit height x width x 3 image as the network's input: float
/// [3, height, width] in RGB order, (v / 255 - mean) / std per channel,
/// computed in float as the data loader's tables are.
torch::Tensor normalize_image(const torch::Tensor& hwc,
                              ColorOrder order,
                              const Normalization& normalization);

/// Throws DataError, naming `what`, unless `hwc` is a non-empty 8-bit
/// height x width x 3 CPU tensor.
void check_rgb_image(const torch::Tensor& hwc, const std::string& what);

}  // namespace mnv2
