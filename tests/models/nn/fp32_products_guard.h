#pragma once

// Runs a test's fp32 1x1 products as on another CPU: MKL's, as on an Intel
// CPU, or the library's own, as elsewhere; the host's own kind again when
// it goes out of scope.
#include "../models/nn/matrix_products.h"

namespace mnv2::test {

class Fp32ProductsGuard {
 public:
  explicit Fp32ProductsGuard(Fp32Products kind) {
    fp32_products_for_testing().store(static_cast<int>(kind));
  }
  ~Fp32ProductsGuard() {
    fp32_products_for_testing().store(-1);
  }
  Fp32ProductsGuard(const Fp32ProductsGuard&) = delete;
  Fp32ProductsGuard& operator=(const Fp32ProductsGuard&) = delete;
};

// Both kinds, for a loop over them.
inline constexpr Fp32Products kBothFp32Products[] = {
    Fp32Products::kMklOnIntel, Fp32Products::kMklElsewhere};

}  // namespace mnv2::test
