#pragma once

#include <string>
#include <string_view>

namespace mnv2 {

/// Checks every stored record of a zip archive (the torch.save format) against
/// the CRC-32 in its central directory. LibTorch's reader does not, so a file
/// with flipped bytes in its tensor data would otherwise load silently with
/// wrong weights. Returns an empty string when the archive is intact, or a
/// short description of the first problem.
std::string zip_integrity_problem(std::string_view archive);

}  // namespace mnv2
