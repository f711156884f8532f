#pragma once

// Which matrix products LibTorch computes fast on this CPU (private to
// nn/'s .cpp files): the fp32 ones are MKL's where LibTorch has it, and MKL
// takes its fastest kernels on Intel CPUs only.

#include <mobilenetv2/util/cpu_features.h>

#include <ATen/Context.h>

namespace mnv2 {

enum class Fp32Products { kMklOnIntel, kMklElsewhere, kNoMkl };

inline Fp32Products fp32_products() {
  static const Fp32Products kind =
      !at::globalContext().hasMKL() ? Fp32Products::kNoMkl
      : cpu_is_intel()              ? Fp32Products::kMklOnIntel
                                    : Fp32Products::kMklElsewhere;
  return kind;
}

}  // namespace mnv2
