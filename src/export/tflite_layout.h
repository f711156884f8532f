#pragma once

// What the TFLite writer and its verifier agree on: the padding each
// convolution gets, the weights' layouts and the activations' quantization.
// Private to export/.

#include <mobilenetv2/engines/plain_network.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace mnv2::tflite_export {

/// How a convolution's padding is written for an input of `size` pixels:
/// TFLite's SAME when it pads exactly as the network does, else an explicit
/// PAD of `pad` pixels on every side before a VALID convolution (PyTorch's
/// symmetric padding at stride 2 on an even size; TFLite's SAME would pad
/// only after).
struct ConvPadding {
  bool same = false;
  int64_t pad = 0;  ///< > 0: a PAD operator first
  int64_t output_size = 0;
};

inline ConvPadding conv_padding(const plain::Conv& conv, int64_t size) {
  const int64_t k = conv.weight_shape[2];
  const int64_t s = conv.stride;
  const int64_t same_output = (size + s - 1) / s;
  const int64_t same_total =
      std::max<int64_t>((same_output - 1) * s + k - size, 0);
  if (conv.same_padding) {
    return {true, 0, same_output};
  }
  const int64_t output = (size + 2 * conv.padding - k) / s + 1;
  if (conv.padding == 0) {
    return {false, 0, output};
  }
  if (same_output == output && same_total / 2 == conv.padding) {
    return {true, 0, output};
  }
  return {false, conv.padding, output};
}

inline bool is_depthwise(const plain::Conv& conv) {
  return conv.groups > 1 && conv.groups == conv.weight_shape[0] &&
         conv.weight_shape[1] == 1;
}

/// A convolution's weights in TFLite's layout: [out, k, k, in] for a dense
/// convolution, [1, k, k, out] for a depthwise one, from PyTorch's
/// [out, in / groups, k, k].
template <class T>
std::vector<T> tflite_weight_layout(const std::vector<T>& w,
                                    const plain::Conv& conv) {
  const int64_t out = conv.weight_shape[0];
  const int64_t in = conv.weight_shape[1];
  const int64_t k = conv.weight_shape[2];
  std::vector<T> result(w.size());
  const bool depthwise = is_depthwise(conv);
  for (int64_t o = 0; o < out; ++o) {
    for (int64_t i = 0; i < in; ++i) {
      for (int64_t y = 0; y < k; ++y) {
        for (int64_t x = 0; x < k; ++x) {
          const auto from = ((o * in + i) * k + y) * k + x;
          const auto to = depthwise ? (y * k + x) * out + o
                                    : ((o * k + y) * k + x) * in + i;
          result[static_cast<size_t>(to)] = w[static_cast<size_t>(from)];
        }
      }
    }
  }
  return result;
}

inline std::vector<int32_t> tflite_weight_shape(const plain::Conv& conv) {
  const auto out = static_cast<int32_t>(conv.weight_shape[0]);
  const auto in = static_cast<int32_t>(conv.weight_shape[1]);
  const auto k = static_cast<int32_t>(conv.weight_shape[2]);
  return is_depthwise(conv) ? std::vector<int32_t>{1, k, k, out}
                            : std::vector<int32_t>{out, k, k, in};
}

/// The int8 zero point of an activation: our u8 codes after ReLU6 are
/// TFLite's int8 codes plus 128; s8 codes are symmetric.
inline int64_t zero_point_after(bool relu6) {
  return relu6 ? -128 : 0;
}

/// The classifier's int8 weights: per class, symmetric, 127 levels.
struct ClassifierCodes {
  std::vector<int8_t> codes;  ///< [classes, features]
  std::vector<float> scales;  ///< [classes]
};
inline ClassifierCodes classifier_codes(const plain::Network& network) {
  ClassifierCodes q;
  const auto features = static_cast<size_t>(network.features);
  q.codes.resize(network.fc_weight.size());
  q.scales.resize(static_cast<size_t>(network.classes));
  for (size_t c = 0; c < q.scales.size(); ++c) {
    const auto row =
        network.fc_weight.begin() + static_cast<std::ptrdiff_t>(c * features);
    float max = 0;
    for (size_t k = 0; k < features; ++k) {
      max = std::max(max, std::abs(row[static_cast<std::ptrdiff_t>(k)]));
    }
    q.scales[c] = max > 0 ? max / 127.f : 1.f;
    for (size_t k = 0; k < features; ++k) {
      q.codes[c * features + k] = static_cast<int8_t>(std::clamp(
          std::nearbyint(row[static_cast<std::ptrdiff_t>(k)] / q.scales[c]),
          -127.f,
          127.f));
    }
  }
  return q;
}

}  // namespace mnv2::tflite_export
