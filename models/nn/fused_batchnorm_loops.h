#pragma once

// The fused BatchNorm's loops over rows of channels (channels_last), for
// fp32 and bf16 activations. Private to fused_batchnorm.cpp.

#include "cpu_loops.h"

#include <cmath>
#include <cstdint>
#include <cstring>

namespace mnv2::fused_batchnorm_loops {

using cpu_loops::load;
using cpu_loops::store;
using cpu_loops::to_bf16;

// The clamp's gradient mask is taken on the value the forward stored for z
// (bf16: z rounded), as hardtanh_backward takes it on the stored output.
// Rounding to bf16 is monotone, so stored(z) > low and stored(z) < high are
// z > a and z < b for a the largest float whose rounding is at most low and
// b the smallest whose rounding is at least high: the loops compare the
// computed z with those and round nothing (in bf16 the rounding was most of
// the backward's arithmetic).
struct ClampBounds {
  float low, high;
};
inline ClampBounds stored_clamp_bounds(const float*, float low, float high) {
  return {low, high};
}
inline ClampBounds stored_clamp_bounds(const uint16_t*, float low, float high) {
  // Floats as unsigned keys in the order of their values, -inf to +inf.
  const auto key = [](float f) {
    uint32_t bits;
    std::memcpy(&bits, &f, sizeof bits);
    return bits < 0x80000000u ? bits + 0x80000000u : ~bits;
  };
  const auto value = [](uint32_t k) {
    const uint32_t bits = k >= 0x80000000u ? k - 0x80000000u : ~k;
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
  };
  const auto stored = [](float z) {
    const uint16_t bits = to_bf16(z);
    return load(&bits, 0);
  };
  // The last key in [-inf, +inf] where `holds` (true, then false) holds.
  const auto last = [&](const auto& holds) {
    uint32_t lo = key(-INFINITY), hi = key(INFINITY);
    if (holds(value(hi))) {
      return value(hi);
    }
    while (hi - lo > 1) {
      const uint32_t mid = lo + (hi - lo) / 2;
      (holds(value(mid)) ? lo : hi) = mid;
    }
    return value(lo);
  };
  const float a = last([&](float z) { return stored(z) <= low; });
  const float below_b = last([&](float z) { return stored(z) < high; });
  return {a, std::nextafter(below_b, INFINITY)};
}

template <class T>
MNV2_VECTOR_CLONES void add_moments(const T* __restrict x,
                                    int64_t rows,
                                    int64_t channels,
                                    float* __restrict sum,
                                    float* __restrict squares) {
  for (int64_t r = 0; r < rows; ++r) {
    const T* __restrict row = x + r * channels;
    for (int64_t c = 0; c < channels; ++c) {
      const float v = load(row, c);
      sum[c] += v;
      squares[c] += v * v;
    }
  }
}

template <class T>
MNV2_VECTOR_CLONES void scale_shift_clamp(const T* __restrict x,
                                          T* __restrict y,
                                          int64_t rows,
                                          int64_t channels,
                                          const float* __restrict scale,
                                          const float* __restrict shift,
                                          float low,
                                          float high) {
  for (int64_t r = 0; r < rows; ++r) {
    const T* __restrict in = x + r * channels;
    T* __restrict out = y + r * channels;
    for (int64_t c = 0; c < channels; ++c) {
      const float v = load(in, c) * scale[c] + shift[c];
      store(out, c, v < low ? low : (v > high ? high : v));
    }
  }
}

// The clamp passes the gradient g[i] where low < z < high, z = x scale +
// shift the BatchNorm's output (hardtanh_backward's open interval; infinite
// bounds pass everything). z is computed again from x, as the forward
// computed it, rather than read: one stream of memory fewer.
// `low` and `high` are stored_clamp_bounds'.
template <class T>
inline float passed_gradient(const T* g,
                             int64_t i,
                             float xv,
                             float scale,
                             float shift,
                             float low,
                             float high) {
  const float z = xv * scale + shift;
  return (z > low && z < high) ? load(g, i) : 0.f;
}

template <class T>
MNV2_VECTOR_CLONES void add_gradient_moments(const T* __restrict x,
                                             const T* __restrict g,
                                             int64_t rows,
                                             int64_t channels,
                                             const float* __restrict scale,
                                             const float* __restrict shift,
                                             const float* __restrict mean,
                                             float low,
                                             float high,
                                             float* __restrict sum_g,
                                             float* __restrict sum_gx) {
  for (int64_t r = 0; r < rows; ++r) {
    const auto o = r * channels;
    for (int64_t c = 0; c < channels; ++c) {
      const float xv = load(x, o + c);
      const float gv =
          passed_gradient(g, o + c, xv, scale[c], shift[c], low, high);
      sum_g[c] += gv;
      sum_gx[c] += gv * (xv - mean[c]);
    }
  }
}

// Element i (of channel c) of the input's gradient, dx = g gain - x slope +
// offset with g the clamp's passed gradient.
template <class T>
inline float input_gradient_value(const T* x,
                                  const T* g,
                                  int64_t i,
                                  int64_t c,
                                  const float* scale,
                                  const float* shift,
                                  const float* gain,
                                  const float* slope,
                                  const float* offset,
                                  float low,
                                  float high) {
  const float xv = load(x, i);
  const float gv = passed_gradient(g, i, xv, scale[c], shift[c], low, high);
  return gv * gain[c] - xv * slope[c] + offset[c];
}

template <class T>
MNV2_VECTOR_CLONES void input_gradient(const T* __restrict x,
                                       const T* __restrict g,
                                       T* __restrict dx,
                                       int64_t rows,
                                       int64_t channels,
                                       const float* __restrict scale,
                                       const float* __restrict shift,
                                       const float* __restrict gain,
                                       const float* __restrict slope,
                                       const float* __restrict offset,
                                       float low,
                                       float high) {
  for (int64_t r = 0; r < rows; ++r) {
    const auto o = r * channels;
    for (int64_t c = 0; c < channels; ++c) {
      store(dx,
            o + c,
            input_gradient_value(
                x, g, o + c, c, scale, shift, gain, slope, offset, low, high));
    }
  }
}

// input_gradient over a gradient the caller owns, overwritten by the
// input's: each element is read and written through the one pointer, so the
// stores find their cache lines already loaded, where a separate output
// would read each line in before writing it (3-8% faster per layer at
// batch 32 on an AMD EPYC).
template <class T>
MNV2_VECTOR_CLONES void input_gradient_in_place(const T* __restrict x,
                                                T* g,
                                                int64_t rows,
                                                int64_t channels,
                                                const float* __restrict scale,
                                                const float* __restrict shift,
                                                const float* __restrict gain,
                                                const float* __restrict slope,
                                                const float* __restrict offset,
                                                float low,
                                                float high) {
  for (int64_t r = 0; r < rows; ++r) {
    const auto o = r * channels;
    for (int64_t c = 0; c < channels; ++c) {
      store(g,
            o + c,
            input_gradient_value(
                x, g, o + c, c, scale, shift, gain, slope, offset, low, high));
    }
  }
}

}  // namespace mnv2::fused_batchnorm_loops
