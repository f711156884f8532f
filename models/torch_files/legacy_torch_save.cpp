#include "legacy_torch_save.h"

#include "pickle_compat.h"

#include <cstdint>
#include <cstring>
#include <vector>

namespace mnv2 {

namespace {

constexpr int kHeaderPickles = 3;  // magic number, protocol, system info

// Bytes per element of torch.<Type>Storage.
std::optional<size_t> element_size(const std::string& type) {
  static const std::map<std::string, size_t> sizes = {{"DoubleStorage", 8},
                                                      {"FloatStorage", 4},
                                                      {"HalfStorage", 2},
                                                      {"BFloat16Storage", 2},
                                                      {"LongStorage", 8},
                                                      {"IntStorage", 4},
                                                      {"ShortStorage", 2},
                                                      {"CharStorage", 1},
                                                      {"ByteStorage", 1},
                                                      {"BoolStorage", 1}};
  const auto it = sizes.find(type);
  if (it == sizes.end()) {
    return std::nullopt;
  }
  return it->second;
}

}  // namespace

bool looks_like_legacy_torch_save(std::string_view bytes) {
  // PROTO 2, then LONG1 of the 10-byte magic number 0x1950a86a20f9469cfc6c.
  return bytes.size() > 4 && static_cast<unsigned char>(bytes[0]) == 0x80 &&
         static_cast<unsigned char>(bytes[2]) == 0x8a &&
         static_cast<unsigned char>(bytes[3]) == 0x0a &&
         static_cast<unsigned char>(bytes[4]) == 0x6c &&
         static_cast<unsigned char>(bytes[5]) == 0xfc;
}

std::optional<LegacyArchive> parse_legacy_torch_save(std::string_view bytes,
                                                     std::string& problem) {
  size_t pos = 0;
  for (int i = 0; i < kHeaderPickles; ++i) {
    const auto end = pickle_end(bytes, pos);
    if (!end) {
      problem = "its header is cut short or damaged";
      return std::nullopt;
    }
    pos = *end;
  }
  const auto object_end = pickle_end(bytes, pos);
  if (!object_end) {
    problem = "its data pickle is cut short or damaged";
    return std::nullopt;
  }
  LegacyArchive archive;
  archive.object_pickle = bytes.substr(pos, *object_end - pos);
  const auto keys_end = pickle_end(bytes, *object_end);
  if (!keys_end) {
    problem = "its storage list is cut short or damaged";
    return std::nullopt;
  }
  std::map<std::string, std::string> types;
  for (const auto& ref : storage_refs(archive.object_pickle)) {
    types[ref.key] = ref.type;
  }
  pos = *keys_end;
  for (const auto& key :
       pickle_strings(bytes.substr(*object_end, *keys_end - *object_end))) {
    const auto type = types.find(key);
    const auto size =
        type == types.end() ? std::nullopt : element_size(type->second);
    if (!size) {
      problem = "storage '" + key + "' has an unknown type";
      return std::nullopt;
    }
    if (pos + 8 > bytes.size()) {
      problem = "storage '" + key + "' is missing (truncated?)";
      return std::nullopt;
    }
    int64_t count = 0;
    std::memcpy(&count, bytes.data() + pos, sizeof count);  // little-endian
    const auto n = static_cast<size_t>(count) * *size;
    if (count < 0 || pos + 8 + n > bytes.size()) {
      problem = "storage '" + key + "' is cut short (truncated?)";
      return std::nullopt;
    }
    archive.storages[key] = {pos + 8, n};
    pos += 8 + n;
  }
  return archive;
}

}  // namespace mnv2
