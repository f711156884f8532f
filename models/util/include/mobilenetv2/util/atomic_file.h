#pragma once

#include <string>
#include <string_view>

namespace mnv2 {

/// Writes `bytes` to `path` so that a reader sees either the old file or the
/// complete new one, never a partial file: a temporary file in the same folder
/// is written, flushed to disk and renamed over `path`. Throws
/// std::runtime_error naming the path when any step fails (and removes the
/// temporary file).
void write_file_atomically(const std::string& path, std::string_view bytes);

/// Removes the temporary files that `write_file_atomically(path, ...)` left
/// beside `path` when its process was killed mid-write (`<name>.tmp-XXXXXX`);
/// returns how many it removed.
int remove_stale_temporaries(const std::string& path);

}  // namespace mnv2
