#pragma once

// Free of LibTorch headers: the oneDNN executor is compiled apart from them.

#include <array>
#include <cstdint>

namespace mnv2 {

/// TensorFlow "SAME" padding of one spatial dimension: {before, after}.
std::array<int64_t, 2> tf_same_padding(int64_t size,
                                       int64_t kernel,
                                       int64_t stride);

}  // namespace mnv2
