#pragma once

// Images from files and OpenCV matrices for mnv2::ImageClassifier
// (the MobileNetV2::vision component: OpenCV and the image codecs).

#include <mobilenetv2/classifier/image_classifier.h>
#include <mobilenetv2/preprocessing/preprocessing.h>

#include <torch/types.h>
#include <opencv2/core/mat.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace mnv2 {

/// An image file as mnv2-eval reads it for `transform`: RGB uint8
/// height x width x 3 (EXIF orientation applied, grayscale replicated,
/// alpha dropped, 16-bit scaled), a JPEG decoded at the largest libjpeg
/// reduction that still leaves the resize to shrink. Throws DataError naming
/// the file when it is missing, not an image, truncated or over the pixel
/// budget (mnv2::set_max_image_pixels).
torch::Tensor read_image(const std::string& path,
                         const EvalTransformOptions& transform);

/// A cv::Mat as a uint8 height x width x 3 tensor (copied, channel order
/// kept: OpenCV's is BGR). Throws DataError for an empty matrix, 1 or 4
/// channels, or other depths than 8 bits.
torch::Tensor mat_to_tensor(const cv::Mat& image);

/// Top-k of an OpenCV BGR image.
std::vector<Prediction> classify(const ImageClassifier& classifier,
                                 const cv::Mat& bgr,
                                 int64_t k = 5);
/// Top-k of image files, read as mnv2-eval --predict reads them.
std::vector<std::vector<Prediction>> classify_files(
    const ImageClassifier& classifier,
    const std::vector<std::string>& paths,
    int64_t k = 5);

}  // namespace mnv2
