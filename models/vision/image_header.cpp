#include <mobilenetv2/vision/image_header.h>

#include <tiffio.h>
#include <turbojpeg.h>
#include <webp/decode.h>

#include <algorithm>
#include <cctype>
#include <cstring>

namespace mnv2 {

namespace {

bool starts_with(std::string_view bytes, std::string_view magic) {
  return bytes.substr(0, magic.size()) == magic;
}

uint32_t big_endian32(std::string_view bytes, size_t at) {
  uint32_t value = 0;
  for (size_t i = 0; i < 4; ++i) {
    value = (value << 8) | static_cast<unsigned char>(bytes[at + i]);
  }
  return value;
}

int64_t little_endian(std::string_view bytes, size_t at, int width) {
  uint64_t value = 0;
  for (int i = width - 1; i >= 0; --i) {
    value = (value << 8) | static_cast<unsigned char>(bytes[at + i]);
  }
  // BMP sizes are signed 32-bit (a negative height: top-down rows).
  return width == 4 ? static_cast<int32_t>(value) : static_cast<int64_t>(value);
}

std::optional<ImageHeader> sized(ImageFormat format,
                                 int64_t width,
                                 int64_t height) {
  if (width <= 0 || height <= 0) {
    return std::nullopt;  // the decoder says what is wrong
  }
  return ImageHeader{format, width, height};
}

std::optional<ImageHeader> jpeg(std::string_view bytes) {
  tjhandle handle = tjInitDecompress();
  if (!handle) {
    return std::nullopt;
  }
  int width = 0, height = 0, subsampling = 0, colorspace = 0;
  const int status =
      tjDecompressHeader3(handle,
                          reinterpret_cast<const unsigned char*>(bytes.data()),
                          static_cast<unsigned long>(bytes.size()),
                          &width,
                          &height,
                          &subsampling,
                          &colorspace);
  tjDestroy(handle);
  if (status != 0) {
    return std::nullopt;
  }
  return sized(ImageFormat::kJpeg, width, height);
}

// PNG: the IHDR chunk comes first (width, height: big-endian at 16 and 20).
std::optional<ImageHeader> png(std::string_view bytes) {
  if (bytes.size() < 24 || bytes.substr(12, 4) != "IHDR") {
    return std::nullopt;
  }
  return sized(
      ImageFormat::kPng, big_endian32(bytes, 16), big_endian32(bytes, 20));
}

std::optional<ImageHeader> webp(std::string_view bytes) {
  int width = 0, height = 0;
  if (!WebPGetInfo(reinterpret_cast<const uint8_t*>(bytes.data()),
                   bytes.size(),
                   &width,
                   &height)) {
    return std::nullopt;
  }
  return sized(ImageFormat::kWebp, width, height);
}

// BMP: the DIB header's size at 14 says its kind; OS/2's 12-byte header has
// 16-bit sizes, all later ones signed 32-bit.
std::optional<ImageHeader> bmp(std::string_view bytes) {
  if (bytes.size() < 26) {
    return std::nullopt;
  }
  const int64_t header = little_endian(bytes, 14, 4);
  if (header == 12) {
    return sized(ImageFormat::kBmp,
                 little_endian(bytes, 18, 2),
                 little_endian(bytes, 20, 2));
  }
  const int64_t height = little_endian(bytes, 22, 4);
  return sized(ImageFormat::kBmp,
               little_endian(bytes, 18, 4),
               height < 0 ? -height : height);
}

// PNM (P1-P6): "P<n>", then width and height as decimal text, with
// whitespace and #-comments between the tokens.
std::optional<ImageHeader> pnm(std::string_view bytes) {
  size_t at = 2;
  int64_t numbers[2] = {0, 0};
  for (auto& number : numbers) {
    while (at < bytes.size()) {
      if (bytes[at] == '#') {
        while (at < bytes.size() && bytes[at] != '\n') {
          ++at;
        }
      } else if (std::isspace(static_cast<unsigned char>(bytes[at]))) {
        ++at;
      } else {
        break;
      }
    }
    size_t digits = 0;
    while (at < bytes.size() && digits < 10 &&
           std::isdigit(static_cast<unsigned char>(bytes[at]))) {
      number = number * 10 + (bytes[at] - '0');
      ++at;
      ++digits;
    }
    if (digits == 0) {
      return std::nullopt;
    }
  }
  return sized(ImageFormat::kPnm, numbers[0], numbers[1]);
}

// TIFF through libtiff, reading from memory.
struct Memory {
  std::string_view bytes;
  toff_t position = 0;
};

tsize_t tiff_read(thandle_t handle, tdata_t buffer, tsize_t size) {
  auto* m = static_cast<Memory*>(handle);
  if (m->position >= m->bytes.size() || size <= 0) {
    return 0;
  }
  const auto n = std::min<toff_t>(static_cast<toff_t>(size),
                                  m->bytes.size() - m->position);
  std::memcpy(buffer, m->bytes.data() + m->position, n);
  m->position += n;
  return static_cast<tsize_t>(n);
}

tsize_t tiff_write(thandle_t, tdata_t, tsize_t) {
  return 0;
}

toff_t tiff_seek(thandle_t handle, toff_t offset, int whence) {
  auto* m = static_cast<Memory*>(handle);
  const toff_t base = whence == SEEK_CUR   ? m->position
                      : whence == SEEK_END ? m->bytes.size()
                                           : 0;
  m->position = base + offset;
  return m->position;
}

int tiff_close(thandle_t) {
  return 0;
}

toff_t tiff_size(thandle_t handle) {
  return static_cast<Memory*>(handle)->bytes.size();
}

int tiff_map(thandle_t, tdata_t*, toff_t*) {
  return 0;
}

void tiff_unmap(thandle_t, tdata_t, toff_t) {}

std::optional<ImageHeader> tiff(std::string_view bytes) {
  // libtiff reports problems through process-wide handlers: quiet them once
  // (the decoder says what is wrong with the file).
  static const bool quiet = [] {
    TIFFSetErrorHandler(nullptr);
    TIFFSetWarningHandler(nullptr);
    return true;
  }();
  static_cast<void>(quiet);
  Memory memory{bytes};
  TIFF* file = TIFFClientOpen("image",
                              "rm",
                              &memory,
                              tiff_read,
                              tiff_write,
                              tiff_seek,
                              tiff_close,
                              tiff_size,
                              tiff_map,
                              tiff_unmap);
  if (!file) {
    return std::nullopt;
  }
  uint32_t width = 0, height = 0;
  const bool ok = TIFFGetField(file, TIFFTAG_IMAGEWIDTH, &width) == 1 &&
                  TIFFGetField(file, TIFFTAG_IMAGELENGTH, &height) == 1;
  TIFFClose(file);
  if (!ok) {
    return std::nullopt;
  }
  return sized(ImageFormat::kTiff, width, height);
}

}  // namespace

ImageFormat image_format(std::string_view bytes) {
  if (starts_with(bytes, "\xFF\xD8")) {
    return ImageFormat::kJpeg;
  }
  if (starts_with(bytes, "\x89PNG\r\n\x1A\n")) {
    return ImageFormat::kPng;
  }
  if (bytes.size() >= 12 && starts_with(bytes, "RIFF") &&
      bytes.substr(8, 4) == "WEBP") {
    return ImageFormat::kWebp;
  }
  if (starts_with(bytes, "BM")) {
    return ImageFormat::kBmp;
  }
  if (starts_with(bytes, std::string_view("II*\0", 4)) ||
      starts_with(bytes, std::string_view("MM\0*", 4))) {
    return ImageFormat::kTiff;
  }
  if (bytes.size() > 2 && bytes[0] == 'P' && bytes[1] >= '1' &&
      bytes[1] <= '6') {
    return ImageFormat::kPnm;
  }
  return ImageFormat::kOther;
}

std::optional<ImageHeader> read_image_header(std::string_view bytes) {
  switch (image_format(bytes)) {
    case ImageFormat::kJpeg:
      return jpeg(bytes);
    case ImageFormat::kPng:
      return png(bytes);
    case ImageFormat::kWebp:
      return webp(bytes);
    case ImageFormat::kBmp:
      return bmp(bytes);
    case ImageFormat::kTiff:
      return tiff(bytes);
    case ImageFormat::kPnm:
      return pnm(bytes);
    case ImageFormat::kOther:
      break;
  }
  return std::nullopt;
}

}  // namespace mnv2
