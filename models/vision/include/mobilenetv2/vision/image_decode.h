#pragma once

#include <mobilenetv2/preprocessing/preprocessing.h>

#include <opencv2/core/mat.hpp>

#include <cstdint>
#include <functional>
#include <string>

namespace mnv2 {

// The pixel budget (set_max_image_pixels, max_image_pixels) is the
// classifier's (mobilenetv2/preprocessing/preprocessing.h): it bounds the
// decoded image here, from its header, and the resized one there. Headers are
// read for JPEG, PNG, WebP, BMP, TIFF and PNM (every format the loader takes);
// other formats keep OpenCV's own limit of 2^30 pixels.

/// Given a JPEG's stored width and height, the libjpeg reduction to decode it
/// at (1, 2, 4 or 8: libjpeg scales in the DCT, so a 1/2 decode costs about a
/// quarter of the full one). Other formats always decode at full size.
using JpegReduction = std::function<int(int64_t width, int64_t height)>;

/// Decodes any image OpenCV reads (JPEG, PNG, BMP, WebP, TIFF, ...) into an
/// 8-bit RGB matrix: grayscale is replicated, alpha dropped (as PIL's
/// convert("RGB")), 16-bit scaled to 8-bit, palettes expanded, and the EXIF
/// orientation applied. A JPEG is decoded at the reduction `reduce` picks
/// (none by default). Throws DataError naming the file when it is missing,
/// empty, truncated, not an image, or over the pixel budget.
cv::Mat decode_rgb(const std::string& path, const JpegReduction& reduce = {});

/// As decode_rgb, in OpenCV's BGR channel order (the loader converts to RGB
/// when it writes the batch, after the image has been cropped and resized).
cv::Mat decode_bgr(const std::string& path, const JpegReduction& reduce = {});

/// The bytes of an image file; DataError naming it when it is a folder or
/// cannot be opened.
std::string read_image_file(const std::string& path);

/// As decode_bgr, for an image already in memory (a member of a tar shard);
/// `name` is what the errors call it.
cv::Mat decode_bgr_bytes(const std::string& name,
                         const std::string& bytes,
                         const JpegReduction& reduce = {});

}  // namespace mnv2
