#pragma once

#include <cstdint>

namespace mnv2 {

/// Rounds a channel count to the nearest multiple of `divisor`, never going
/// below `min_value` (default: `divisor`) nor more than 10% below `value`.
/// Same arithmetic as torchvision's `_make_divisible`, including the truncation
/// of `value + divisor / 2` toward zero.
inline int64_t make_divisible(double value,
                              int64_t divisor,
                              int64_t min_value = 0) {
  if (min_value <= 0) {
    min_value = divisor;
  }
  const auto rounded =
      static_cast<int64_t>(value + static_cast<double>(divisor) / 2) / divisor *
      divisor;
  int64_t result = rounded > min_value ? rounded : min_value;
  if (static_cast<double>(result) < 0.9 * value) {
    result += divisor;
  }
  return result;
}

}  // namespace mnv2
