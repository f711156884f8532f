#pragma once

// Which matrix products LibTorch computes fast on this CPU (private to
// nn/'s .cpp files): the fp32 ones are MKL's where LibTorch has it, and MKL
// takes its fastest kernels on Intel CPUs only. Our own loops for layers
// with a narrow side (narrow_products.h) serve those layers on every CPU:
// off Intel's MKL because MKL's are slow there, and on Intel CPUs because
// they let the depthwise BatchNorm and the projection train as one, which
// won with AVX-512's 16-float vectors and with AVX2's 8-float ones
// (docs/benchmarks.md).

#include <mobilenetv2/util/cpu_features.h>

#include <ATen/Context.h>

#include <atomic>

namespace mnv2 {

enum class Fp32Products {
  kMklOnIntel,           // MKL's wherever they serve (tests only: no CPU
                         // takes it since our narrow ones won on AVX2 too)
  kMklElsewhere,         // our narrow products; MKL's on the smallest maps
  kNoMkl,                // our narrow products; oneDNN's elsewhere
  kMklOnIntelOwnNarrow,  // our narrow products; MKL's as on Intel elsewhere
};

// A kind the tests set, so that every host runs both paths (-1: none).
inline std::atomic<int>& fp32_products_for_testing() {
  static std::atomic<int> kind{-1};
  return kind;
}

inline Fp32Products fp32_products() {
  const int forced =
      fp32_products_for_testing().load(std::memory_order_relaxed);
  if (forced >= 0) {
    return static_cast<Fp32Products>(forced);
  }
  static const Fp32Products kind =
      !at::globalContext().hasMKL() ? Fp32Products::kNoMkl
      : !cpu_is_intel()             ? Fp32Products::kMklElsewhere
                                    : Fp32Products::kMklOnIntelOwnNarrow;
  return kind;
}

// Whether the fp32 products that MKL computes are Intel's fastest kernels.
inline bool mkl_products_fastest() {
  const auto kind = fp32_products();
  return kind == Fp32Products::kMklOnIntel ||
         kind == Fp32Products::kMklOnIntelOwnNarrow;
}

// Whether our own loops compute the fp32 products of narrow layers.
inline bool own_narrow_products() {
  return fp32_products() != Fp32Products::kMklOnIntel;
}

}  // namespace mnv2
