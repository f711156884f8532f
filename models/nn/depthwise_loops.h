#pragma once

// The depthwise convolution's gradient loops over channels-last images, for
// fp32 and bf16 activations, and the kernel's layout for them. Private to
// depthwise_conv.cpp and expansion_depthwise.cpp.

#include "cpu_loops.h"
#include "gradient_layout.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

namespace mnv2::depthwise_loops {

using cpu_loops::load;
using cpu_loops::store;

// Geometry of a depthwise convolution, per image.
struct DepthwiseShape {
  int64_t in_h, in_w, out_h, out_w, channels, kernel, stride, padding;
};

// The output pixels whose windows cover an input row or column: for each
// input position, its taps (kernel offset, output position), worked out once
// so that the loops divide nothing.
struct Taps {
  std::vector<int64_t> count;        // per input position
  std::vector<int64_t> offset, out;  // kernel entries per position
};

inline Taps covering_taps(int64_t in, int64_t out, const DepthwiseShape& s) {
  Taps t;
  t.count.assign(static_cast<size_t>(in), 0);
  t.offset.assign(static_cast<size_t>(in * s.kernel), 0);
  t.out.assign(static_cast<size_t>(in * s.kernel), 0);
  for (int64_t i = 0; i < in; ++i) {
    for (int64_t k = 0; k < s.kernel; ++k) {
      const int64_t o = i + s.padding - k;
      if (o >= 0 && o % s.stride == 0 && o / s.stride < out) {
        const auto slot = static_cast<size_t>(i * s.kernel + t.count[i]++);
        t.offset[slot] = k;
        t.out[slot] = o / s.stride;
      }
    }
  }
  return t;
}

// One image's contribution to the weight gradient of channels [first,
// channels), channels last: each output pixel's gradient times the input
// under each tap of its window, summed in fp32 into `sums`, the kernel as
// [kernel * kernel][channels].
template <class T>
MNV2_VECTOR_CLONES void add_depthwise_weight_gradient(
    const T* __restrict grad,   // one image: [out_h, out_w, channels]
    const T* __restrict input,  // one image: [in_h, in_w, channels]
    float* __restrict sums,
    const DepthwiseShape& s,
    int64_t first) {
  const int64_t channels = s.channels;
  for (int64_t oh = 0; oh < s.out_h; ++oh) {
    for (int64_t ow = 0; ow < s.out_w; ++ow) {
      const T* __restrict g = grad + (oh * s.out_w + ow) * channels;
      for (int64_t kh = 0; kh < s.kernel; ++kh) {
        const int64_t ih = oh * s.stride + kh - s.padding;
        if (ih < 0 || ih >= s.in_h) {
          continue;
        }
        for (int64_t kw = 0; kw < s.kernel; ++kw) {
          const int64_t iw = ow * s.stride + kw - s.padding;
          if (iw < 0 || iw >= s.in_w) {
            continue;
          }
          const T* __restrict x = input + (ih * s.in_w + iw) * channels;
          float* __restrict sum = sums + (kh * s.kernel + kw) * channels;
          for (int64_t c = first; c < channels; ++c) {
            sum[c] += load(g, c) * load(x, c);
          }
        }
      }
    }
  }
}

// 16 fp32 lanes (GCC's vector extension: one AVX-512 register, two AVX2
// ones or four SSE ones in the clones), loaded from fp32 or bf16 bits.
using Lanes = float __attribute__((vector_size(64)));
using HalfLaneBits = uint16_t __attribute__((vector_size(32)));
using LaneHalves = uint16_t __attribute__((vector_size(64)));
constexpr int64_t kLanes = 16;
// Output rows per strip of the 3x3 weight gradient below.
constexpr int64_t kStripRows = 4;

// (Through a reference: a 64-byte vector returned by value would change
// the calling convention between the clones.)
inline void load_lanes(Lanes& v, const float* p) {
  std::memcpy(&v, p, sizeof v);
}
inline void load_lanes(Lanes& v, const uint16_t* p) {
  HalfLaneBits half;
  std::memcpy(&half, p, sizeof half);
  // Each bf16 as the high half of its fp32 (x86 is little endian).
  const HalfLaneBits zero = {};
  // clang-format off
  const LaneHalves bits = __builtin_shufflevector(zero, half,
      0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23,
      8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  // clang-format on
  std::memcpy(&v, &bits, sizeof v);
}

// One input row's gradient, channels last: each input pixel gathers the
// output pixels whose windows cover it (with stride 2, one to four of the
// nine taps), in fp32, 16 channels at a time in registers (the rest one at
// a time), the taps added in the same order for every channel; `weights` is
// the kernel as [kernel * kernel][channels].
template <class T>
MNV2_VECTOR_CLONES void depthwise_input_gradient_row(
    const T* __restrict grad,  // one image: [out_h, out_w, channels]
    const float* __restrict weights,
    T* __restrict dx,  // one input row: [in_w, channels]
    int64_t row,
    const Taps& rows,
    const Taps& cols,
    const DepthwiseShape& s) {
  const int64_t channels = s.channels;
  const int64_t tiled = channels / kLanes * kLanes;
  // The covering taps of one input pixel: offsets into grad and weights.
  std::vector<int64_t> grad_at(static_cast<size_t>(s.kernel * s.kernel));
  std::vector<int64_t> weight_at(grad_at.size());
  std::vector<float> sums(std::is_same_v<T, float> ? 0 : channels);
  for (int64_t col = 0; col < s.in_w; ++col) {
    size_t taps = 0;
    for (int64_t i = 0; i < rows.count[row]; ++i) {
      const auto ri = static_cast<size_t>(row * s.kernel + i);
      for (int64_t j = 0; j < cols.count[col]; ++j, ++taps) {
        const auto cj = static_cast<size_t>(col * s.kernel + j);
        grad_at[taps] = (rows.out[ri] * s.out_w + cols.out[cj]) * channels;
        weight_at[taps] =
            (rows.offset[ri] * s.kernel + cols.offset[cj]) * channels;
      }
    }
    T* __restrict out = dx + col * channels;
    for (int64_t c = 0; c < tiled; c += kLanes) {
      Lanes sum = {};
      for (size_t t = 0; t < taps; ++t) {
        Lanes g, w;
        load_lanes(g, grad + grad_at[t] + c);
        load_lanes(w, weights + weight_at[t] + c);
        sum += g * w;
      }
      if constexpr (std::is_same_v<T, float>) {
        std::memcpy(out + c, &sum, sizeof sum);
      } else {
        std::memcpy(sums.data() + c, &sum, sizeof sum);
      }
    }
    if constexpr (!std::is_same_v<T, float>) {
      // Rounded to bf16 in one loop over the row, which GCC vectorises.
      for (int64_t c = 0; c < tiled; ++c) {
        store(out, c, sums[static_cast<size_t>(c)]);
      }
    }
    for (int64_t c = tiled; c < channels; ++c) {
      float sum = 0.f;
      for (size_t t = 0; t < taps; ++t) {
        sum += load(grad, grad_at[t] + c) * weights[weight_at[t] + c];
      }
      store(out, c, sum);
    }
  }
}

// add_depthwise_weight_gradient for a 3x3 kernel, 16 channels at a time
// with the nine taps' sums in registers: each output pixel's gradient is
// loaded once for its nine products, where the loop above loads and stores
// a sum per product (oneDNN's bf16 one in LibTorch 2.13 is slower still,
// 2-2.5x its fp32 one). Returns the first channel it left to that loop.
template <class T>
MNV2_VECTOR_CLONES int64_t add_depthwise3x3_weight_gradient(
    const T* __restrict grad,   // one image: [out_h, out_w, channels]
    const T* __restrict input,  // one image: [in_h, in_w, channels]
    float* __restrict sums,     // [9][channels]
    const DepthwiseShape& s) {
  const int64_t channels = s.channels;
  // The output columns whose three taps all fall inside the input.
  const int64_t inner_first = (s.padding + s.stride - 1) / s.stride;
  const int64_t inner_last =
      std::min(s.out_w - 1, (s.in_w - 3 + s.padding) / s.stride);
  const int64_t tiled = channels / kLanes * kLanes;
  // A strip of output rows at a time, for every 16 channels, so that the
  // input rows under it stay in cache across the channels.
  for (int64_t first_row = 0; first_row < s.out_h; first_row += kStripRows) {
    const int64_t end_row = std::min(s.out_h, first_row + kStripRows);
    for (int64_t c0 = 0; c0 < tiled; c0 += kLanes) {
      Lanes acc[9] = {};
      for (int64_t oh = first_row; oh < end_row; ++oh) {
        const int64_t top = oh * s.stride - s.padding;
        const T* __restrict g_row = grad + oh * s.out_w * channels + c0;
        // Any column, any row: the taps inside the input.
        const auto checked = [&](int64_t ow) {
          Lanes g;
          load_lanes(g, g_row + ow * channels);
          const int64_t left = ow * s.stride - s.padding;
#pragma GCC unroll 3
          for (int64_t kh = 0; kh < 3; ++kh) {
            const int64_t ih = top + kh;
#pragma GCC unroll 3
            for (int64_t kw = 0; kw < 3; ++kw) {
              const int64_t iw = left + kw;
              if (ih >= 0 && ih < s.in_h && iw >= 0 && iw < s.in_w) {
                Lanes x;
                load_lanes(x, input + (ih * s.in_w + iw) * channels + c0);
                acc[kh * 3 + kw] += g * x;
              }
            }
          }
        };
        if (top < 0 || top + 2 >= s.in_h) {
          for (int64_t ow = 0; ow < s.out_w; ++ow) {
            checked(ow);
          }
          continue;
        }
        for (int64_t ow = 0; ow < inner_first; ++ow) {
          checked(ow);
        }
        const T* __restrict x_row = input + top * s.in_w * channels + c0;
        const int64_t row_step = s.in_w * channels;
        const auto direct = [&] {
          for (int64_t ow = inner_first; ow <= inner_last; ++ow) {
            Lanes g;
            load_lanes(g, g_row + ow * channels);
            const T* __restrict x0 =
                x_row + (ow * s.stride - s.padding) * channels;
#pragma GCC unroll 3
            for (int64_t kh = 0; kh < 3; ++kh) {
#pragma GCC unroll 3
              for (int64_t kw = 0; kw < 3; ++kw) {
                Lanes x;
                load_lanes(x, x0 + kh * row_step + kw * channels);
                acc[kh * 3 + kw] += g * x;
              }
            }
          }
        };
        // bf16 at stride 1: the window's columns of three input rows
        // ([kw][kh]) move one column a step, and each step widens only the
        // new one, so each input value is widened once per output row
        // instead of three times (1.3-1.7x on one core). fp32 loads cost no
        // widening, and at stride 2 the copies cost what the loads save.
        if constexpr (std::is_same_v<T, uint16_t>) {
          if (s.stride == 1 && inner_first <= inner_last) {
            Lanes window[3][3];
            const auto load_column = [&](int64_t kw, const T* at) {
#pragma GCC unroll 3
              for (int64_t kh = 0; kh < 3; ++kh) {
                load_lanes(window[kw][kh], at + kh * row_step);
              }
            };
            const T* start = x_row + (inner_first - s.padding) * channels;
            load_column(1, start);
            load_column(2, start + channels);
            for (int64_t ow = inner_first; ow <= inner_last; ++ow) {
              Lanes g;
              load_lanes(g, g_row + ow * channels);
#pragma GCC unroll 3
              for (int64_t kh = 0; kh < 3; ++kh) {
                window[0][kh] = window[1][kh];
                window[1][kh] = window[2][kh];
              }
              load_column(2, x_row + (ow + 2 - s.padding) * channels);
#pragma GCC unroll 3
              for (int64_t kh = 0; kh < 3; ++kh) {
#pragma GCC unroll 3
                for (int64_t kw = 0; kw < 3; ++kw) {
                  acc[kh * 3 + kw] += g * window[kw][kh];
                }
              }
            }
          } else {
            direct();
          }
        } else {
          direct();
        }
        for (int64_t ow = std::max(inner_first, inner_last + 1); ow < s.out_w;
             ++ow) {
          checked(ow);
        }
      }
#pragma GCC unroll 9
      for (int64_t k = 0; k < 9; ++k) {
        Lanes total;
        load_lanes(total, sums + k * channels + c0);
        total += acc[k];
        std::memcpy(sums + k * channels + c0, &total, sizeof total);
      }
    }
  }
  return tiled;
}

// One image's contribution to the whole kernel's gradient: the 3x3 loop
// where it applies, the general one for the channels it left.
template <class T>
void add_image_weight_gradient(const T* grad,
                               const T* input,
                               float* sums,
                               const DepthwiseShape& s) {
  const int64_t rest =
      s.kernel == 3 ? add_depthwise3x3_weight_gradient(grad, input, sums, s)
                    : 0;
  if (rest < s.channels) {
    add_depthwise_weight_gradient(grad, input, sums, s, rest);
  }
}

// The kernel [channels, 1, k, k] as the loops take it: [k * k, channels],
// fp32.
inline torch::Tensor kernel_as_taps(const torch::Tensor& weight) {
  return weight.to(torch::kFloat)
      .reshape({weight.size(0), weight.size(2) * weight.size(3)})
      .t()
      .contiguous();
}

// The threads' [threads, k * k * channels] sums as the kernel's gradient
// [channels, 1, k, k], in the weight's dtype and strides.
inline torch::Tensor taps_as_kernel(const torch::Tensor& partial,
                                    const torch::Tensor& weight) {
  return in_strides_of(
      partial.sum(0)
          .reshape({weight.size(2) * weight.size(3), weight.size(0)})
          .t()
          .reshape(weight.sizes())
          .to(weight.scalar_type())
          .contiguous(),
      weight);
}

}  // namespace mnv2::depthwise_loops
