#pragma once

// Free of LibTorch headers: the oneDNN executor is compiled apart from them.

#include <algorithm>
#include <array>
#include <cstdint>

namespace mnv2 {

/// TensorFlow "SAME" padding of one spatial dimension: {before, after}.
inline std::array<int64_t, 2> tf_same_padding(int64_t size,
                                              int64_t kernel,
                                              int64_t stride) {
  const int64_t out = (size + stride - 1) / stride;
  const int64_t total =
      std::max<int64_t>((out - 1) * stride + kernel - size, 0);
  return {total / 2, total - total / 2};
}

}  // namespace mnv2
