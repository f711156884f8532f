#include <mobilenetv2/vision/image_decode.h>

#include <mobilenetv2/util/data_error.h>
#include <mobilenetv2/vision/image_header.h>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace mnv2 {

namespace {}  // namespace

std::string read_image_file(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    throw DataError("image '" + path + "' is a folder, not an image file");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw DataError("image '" + path + "' cannot be opened");
  }
  std::ostringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

namespace {

// libjpeg returns a grey-filled image for a truncated JPEG with only a
// warning; PIL refuses such files. A complete JPEG ends with EOI (FF D9),
// possibly followed by padding.
bool jpeg_is_truncated(const std::string& bytes) {
  const auto tail_start = bytes.size() > 64 ? bytes.size() - 64 : 0;
  return bytes.find("\xFF\xD9", tail_start) == std::string::npos;
}

std::string over_budget(const std::string& path,
                        const ImageHeader& header,
                        int64_t limit) {
  return "image '" + path + "' has " + std::to_string(header.width) + "x" +
         std::to_string(header.height) + " pixels, over the budget of " +
         std::to_string(limit) +
         " (a decompression bomb?); --max-image-pixels raises it";
}

int imread_flags(int reduction) {
  switch (reduction) {
    case 2:
      return cv::IMREAD_REDUCED_COLOR_2;
    case 4:
      return cv::IMREAD_REDUCED_COLOR_4;
    case 8:
      return cv::IMREAD_REDUCED_COLOR_8;
    default:
      return cv::IMREAD_COLOR;
  }
}

}  // namespace

cv::Mat decode_bgr(const std::string& path, const JpegReduction& reduce) {
  return decode_bgr_bytes(path, read_image_file(path), reduce);
}

cv::Mat decode_bgr_bytes(const std::string& path,
                         const std::string& bytes,
                         const JpegReduction& reduce) {
  if (bytes.empty()) {
    throw DataError("image '" + path + "' is empty (0 bytes)");
  }
  if (image_format(bytes) == ImageFormat::kJpeg && jpeg_is_truncated(bytes)) {
    throw DataError("image '" + path + "' is a truncated JPEG");
  }
  int flags = cv::IMREAD_COLOR;  // 8-bit, 3 channels, EXIF orientation
  if (const auto header = read_image_header(bytes)) {
    const int64_t limit = max_image_pixels();
    if (header->width * header->height > limit) {
      throw DataError(over_budget(path, *header, limit));
    }
    if (header->format == ImageFormat::kJpeg && reduce) {
      flags = imread_flags(reduce(header->width, header->height));
    }
  }
  cv::Mat decoded;
  try {
    // Unsigned bytes: OpenCV 4.6's WebP decoder refuses a signed (char)
    // buffer, which is what an _InputArray over std::string data makes.
    const cv::Mat raw(1,
                      static_cast<int>(bytes.size()),
                      CV_8UC1,
                      const_cast<char*>(bytes.data()));
    decoded = cv::imdecode(raw, flags);
  } catch (const cv::Exception& e) {
    throw DataError("image '" + path + "' cannot be decoded: " + e.msg);
  }
  if (decoded.empty()) {
    throw DataError("image '" + path + "' is not a readable image");
  }
  return decoded;
}

cv::Mat decode_rgb(const std::string& path, const JpegReduction& reduce) {
  cv::Mat rgb;
  cv::cvtColor(decode_bgr(path, reduce), rgb, cv::COLOR_BGR2RGB);
  return rgb;
}

}  // namespace mnv2
