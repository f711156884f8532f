#include "data/image_decode.h"

#include "common/errors.h"

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace mnv2 {

namespace {

std::string read_file(const std::string& path) {
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

// libjpeg returns a grey-filled image for a truncated JPEG with only a
// warning; PIL refuses such files. A complete JPEG ends with EOI (FF D9),
// possibly followed by padding.
bool jpeg_is_truncated(const std::string& bytes) {
  if (bytes.size() < 4 || static_cast<unsigned char>(bytes[0]) != 0xFF ||
      static_cast<unsigned char>(bytes[1]) != 0xD8) {
    return false;
  }
  const auto tail_start = bytes.size() > 64 ? bytes.size() - 64 : 0;
  return bytes.find("\xFF\xD9", tail_start) == std::string::npos;
}

}  // namespace

cv::Mat decode_bgr(const std::string& path) {
  const std::string bytes = read_file(path);
  if (bytes.empty()) {
    throw DataError("image '" + path + "' is empty (0 bytes)");
  }
  if (jpeg_is_truncated(bytes)) {
    throw DataError("image '" + path + "' is a truncated JPEG");
  }
  cv::Mat decoded;
  try {
    // IMREAD_COLOR: 8-bit, 3 channels, EXIF orientation applied.
    decoded = cv::imdecode(
        cv::_InputArray(bytes.data(), static_cast<int>(bytes.size())),
        cv::IMREAD_COLOR);
  } catch (const cv::Exception& e) {
    throw DataError("image '" + path + "' cannot be decoded: " + e.msg);
  }
  if (decoded.empty()) {
    throw DataError("image '" + path + "' is not a readable image");
  }
  return decoded;
}

cv::Mat decode_rgb(const std::string& path) {
  cv::Mat rgb;
  cv::cvtColor(decode_bgr(path), rgb, cv::COLOR_BGR2RGB);
  return rgb;
}

}  // namespace mnv2
