#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace mnv2 {

/// The parts of a file in torch.save's pre-1.6 ("legacy") format: five
/// pickles (magic number, protocol, system info, the object, the storage
/// keys) followed by each storage's element count (int64) and raw bytes.
struct LegacyArchive {
  std::string_view object_pickle;
  /// Storage key -> (offset in the file, byte count).
  std::map<std::string, std::pair<size_t, size_t>> storages;
};

/// Whether `bytes` start like a legacy torch.save file.
bool looks_like_legacy_torch_save(std::string_view bytes);

/// Splits a legacy file; sets `problem` and returns nullopt when it is
/// malformed or truncated.
std::optional<LegacyArchive> parse_legacy_torch_save(std::string_view bytes,
                                                     std::string& problem);

}  // namespace mnv2
