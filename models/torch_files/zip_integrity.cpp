#include "zip_integrity.h"

#include <cstddef>
#include <cstdint>
#include <optional>

namespace mnv2 {

namespace {

// CRC-32 from LibTorch's own headers (what its zip writer uses), so the model
// library needs no zlib. The header defines its functions with external
// linkage: included here, inside this file's anonymous namespace, they stay
// private to it.
#include <caffe2/serialize/crc_alt.h>

constexpr uint32_t kEndOfCentralDirectory = 0x06054b50;
constexpr uint32_t kZip64EndOfCentralDirectory = 0x06064b50;
constexpr uint32_t kZip64Locator = 0x07064b50;
constexpr uint32_t kCentralEntry = 0x02014b50;
constexpr uint32_t kLocalHeader = 0x04034b50;
constexpr uint16_t kZip64ExtraId = 0x0001;
constexpr uint16_t kStored = 0;
constexpr size_t kEndRecordSize = 22;
constexpr size_t kMaxCommentSize = 0xFFFF;

class Bytes {
 public:
  explicit Bytes(std::string_view data) : data_(data) {}
  bool has(uint64_t offset, uint64_t n) const {
    return offset <= data_.size() && n <= data_.size() - offset;
  }
  uint64_t get(uint64_t offset, int width) const {
    uint64_t value = 0;
    for (int i = width - 1; i >= 0; --i) {
      value = (value << 8) | static_cast<unsigned char>(data_[offset + i]);
    }
    return value;
  }
  std::string_view slice(uint64_t offset, uint64_t n) const {
    return data_.substr(offset, n);
  }
  size_t size() const {
    return data_.size();
  }

 private:
  std::string_view data_;
};

struct Directory {
  uint64_t entries;
  uint64_t offset;
};

std::optional<Directory> find_directory(const Bytes& zip) {
  if (zip.size() < kEndRecordSize) {
    return std::nullopt;
  }
  const size_t lowest = zip.size() > kEndRecordSize + kMaxCommentSize
                            ? zip.size() - kEndRecordSize - kMaxCommentSize
                            : 0;
  for (size_t pos = zip.size() - kEndRecordSize + 1; pos-- > lowest;) {
    if (zip.get(pos, 4) != kEndOfCentralDirectory) {
      continue;
    }
    Directory dir{zip.get(pos + 10, 2), zip.get(pos + 16, 4)};
    const bool zip64 = dir.entries == 0xFFFF || dir.offset == 0xFFFFFFFF;
    if (zip64 && pos >= 20 && zip.get(pos - 20, 4) == kZip64Locator) {
      const uint64_t record = zip.get(pos - 20 + 8, 8);
      if (!zip.has(record, 56) ||
          zip.get(record, 4) != kZip64EndOfCentralDirectory) {
        return std::nullopt;
      }
      dir = {zip.get(record + 32, 8), zip.get(record + 48, 8)};
    }
    return dir;
  }
  return std::nullopt;
}

}  // namespace

std::string zip_integrity_problem(std::string_view archive) {
  const Bytes zip(archive);
  const auto dir = find_directory(zip);
  if (!dir) {
    return "no zip central directory (truncated?)";
  }
  uint64_t pos = dir->offset;
  for (uint64_t i = 0; i < dir->entries; ++i) {
    if (!zip.has(pos, 46) || zip.get(pos, 4) != kCentralEntry) {
      return "damaged zip central directory";
    }
    const auto crc = static_cast<uint32_t>(zip.get(pos + 16, 4));
    uint64_t size = zip.get(pos + 24, 4);
    const uint64_t name_length = zip.get(pos + 28, 2);
    const uint64_t extra_length = zip.get(pos + 30, 2);
    const uint64_t comment_length = zip.get(pos + 32, 2);
    uint64_t local = zip.get(pos + 42, 4);
    if (!zip.has(pos + 46, name_length + extra_length + comment_length)) {
      return "damaged zip central directory";
    }
    const std::string name(zip.slice(pos + 46, name_length));
    // ZIP64 sizes and offsets live in an extra field when the 32-bit ones
    // are saturated, in this order.
    for (uint64_t e = pos + 46 + name_length;
         e + 4 <= pos + 46 + name_length + extra_length;) {
      const auto id = zip.get(e, 2);
      const auto length = zip.get(e + 2, 2);
      if (id == kZip64ExtraId) {
        uint64_t field = e + 4;
        if (size == 0xFFFFFFFF) {
          size = zip.get(field, 8);
          field += 8;
        }
        if (zip.get(pos + 20, 4) == 0xFFFFFFFF) {
          field += 8;
        }
        if (local == 0xFFFFFFFF) {
          local = zip.get(field, 8);
        }
      }
      e += 4 + length;
    }
    if (!zip.has(local, 30) || zip.get(local, 4) != kLocalHeader) {
      return "record '" + name + "' is missing (truncated?)";
    }
    if (zip.get(local + 8, 2) == kStored) {
      const uint64_t data =
          local + 30 + zip.get(local + 26, 2) + zip.get(local + 28, 2);
      if (!zip.has(data, size)) {
        return "record '" + name + "' is cut short (truncated?)";
      }
      const auto bytes = zip.slice(data, size);
      const uint32_t actual = crc32_fast(bytes.data(), bytes.size());
      if (actual != crc) {
        return "record '" + name + "' fails its checksum (corrupt data)";
      }
    }
    pos += 46 + name_length + extra_length + comment_length;
  }
  return {};
}

}  // namespace mnv2
