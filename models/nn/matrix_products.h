#pragma once

// Which matrix products LibTorch computes fast on this CPU (private to
// nn/'s .cpp files): the fp32 ones are MKL's where LibTorch has it, and MKL
// takes its fastest kernels on Intel CPUs only.

#include <mobilenetv2/util/cpu_features.h>

#include <ATen/Context.h>

#include <atomic>

namespace mnv2 {

enum class Fp32Products { kMklOnIntel, kMklElsewhere, kNoMkl };

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
      : cpu_is_intel()              ? Fp32Products::kMklOnIntel
                                    : Fp32Products::kMklElsewhere;
  return kind;
}

}  // namespace mnv2
