#pragma once

#include <opencv2/core/mat.hpp>

#include <string>

namespace mnv2 {

/// Decodes any image OpenCV reads (JPEG, PNG, BMP, WebP, TIFF, ...) into an
/// 8-bit RGB matrix: grayscale is replicated, alpha dropped (as PIL's
/// convert("RGB")), 16-bit scaled to 8-bit, palettes expanded, and the EXIF
/// orientation applied. Throws DataError naming the file when it is missing,
/// empty, truncated or not an image.
cv::Mat decode_rgb(const std::string& path);

/// As decode_rgb, in OpenCV's BGR channel order (the loader converts to RGB
/// when it writes the batch, after the image has been cropped and resized).
cv::Mat decode_bgr(const std::string& path);

}  // namespace mnv2
