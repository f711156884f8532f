#pragma once

// Free of LibTorch headers: the oneDNN executor is compiled apart from them.

#include <algorithm>
#include <array>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace mnv2 {

/// How a convolution pads its input.
enum class Padding {
  /// Symmetric (kernel - 1) / 2 on every side: torchvision's and PyTorch's.
  kTorch,
  /// TensorFlow's "SAME": the output is ceil(input / stride) and the padding
  /// that needs goes after rather than before when it is odd (a stride-2 3x3
  /// convolution on an even size pads 0 before and 1 after). Computed from
  /// each input's size; the layout Keras and TF-slim weights were trained in.
  kTfSame,
};

/// "torch" or "tf_same".
inline std::string padding_name(Padding padding) {
  return padding == Padding::kTfSame ? "tf_same" : "torch";
}
/// Throws std::invalid_argument for other names.
inline Padding padding_from_name(const std::string& name) {
  if (name == "torch") {
    return Padding::kTorch;
  }
  if (name == "tf_same") {
    return Padding::kTfSame;
  }
  throw std::invalid_argument("padding must be torch or tf_same, got '" + name +
                              "'");
}

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
