#pragma once

// Runs a test's fp32 1x1 products as on another CPU: MKL's, as on an Intel
// CPU, or the library's own, as elsewhere; the host's own kind again when
// it goes out of scope.
#include "../models/nn/matrix_products.h"

#include <catch2/catch.hpp>

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

// `check()` with MKL's products (an Intel CPU's), then with our own (other
// CPUs'), on any host.
template <class Check>
void with_each_fp32_products(const Check& check) {
  for (const auto kind :
       {Fp32Products::kMklOnIntel, Fp32Products::kMklElsewhere}) {
    INFO("fp32 products: " << (kind == Fp32Products::kMklOnIntel
                                   ? "MKL's, as on an Intel CPU"
                                   : "our own, as on other CPUs"));
    const Fp32ProductsGuard products(kind);
    check();
  }
}

}  // namespace mnv2::test
