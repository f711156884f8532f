#pragma once

// Image sizes read from file headers, before anything is decoded: what the
// pixel budget and reduced-size JPEG decoding decide from.

#include <cstdint>
#include <optional>
#include <string_view>

namespace mnv2 {

enum class ImageFormat { kJpeg, kPng, kWebp, kBmp, kTiff, kPnm, kOther };

struct ImageHeader {
  ImageFormat format = ImageFormat::kOther;
  int64_t width = 0;
  int64_t height = 0;  ///< as stored (before any EXIF rotation)
};

/// The format from the leading bytes (magic numbers) alone.
ImageFormat image_format(std::string_view bytes);

/// The format from the leading bytes and, for JPEG (libjpeg-turbo's
/// TurboJPEG), WebP (libwebp), TIFF (libtiff, first page), PNG, BMP and
/// PNM, the stored size. Nothing for other formats and for headers that do
/// not parse (the decoder then says why).
std::optional<ImageHeader> read_image_header(std::string_view bytes);

}  // namespace mnv2
