// The AMX products (the bf16 expansions' backward on an Intel Xeon with
// AMX) against LibTorch's product in double on the same bf16 operands, and
// where they are used.
#include "test_support.h"

#include <mobilenetv2/util/cpu_features.h>

#include <catch2/catch.hpp>

#include "../models/nn/amx_products.h"
#include "../models/nn/bf16_products.h"

#include <ATen/native/CPUBlas.h>

namespace {

using mnv2::test::bf16_valued_matrix;
using mnv2::test::relative_error;

// b [inner x columns] as bf16_products' pairs of rows.
std::vector<uint16_t> pairs_of(const torch::Tensor& b) {
  std::vector<uint16_t> pairs(static_cast<size_t>(
      mnv2::bf16_products::pairs_size(b.size(0), b.size(1))));
  mnv2::bf16_products::pack_pairs(
      b.const_data_ptr<float>(), b.size(0), b.size(1), pairs.data());
  return pairs;
}

}  // namespace

TEST_CASE("the AMX products serve where oneDNN may use AMX's tiles",
          "[model][fused]") {
#if defined(CPUBLAS_BRGEMM_BF16BF16F32)
  // With the kernel exported, the tiles (not capped by ONEDNN_MAX_CPU_ISA)
  // decide.
  CHECK(mnv2::amx_products::available() == mnv2::cpu_has_amx_bf16());
#else
  CHECK_FALSE(mnv2::amx_products::available());
#endif
}

TEST_CASE("the AMX products equal LibTorch's in double on bf16 values",
          "[model][fused]") {
  if (!mnv2::amx_products::available()) {
    WARN("no AMX-BF16 here (or capped below it): products skipped");
    return;
  }
  torch::manual_seed(21);
  for (const int64_t columns : {8, 16, 24, 96, 144}) {
    for (const int64_t rows : {1, 13, 1031}) {
      for (const int64_t inner : {2, 16, 96, 146}) {
        CAPTURE(columns, rows, inner);
        // a's rows 3 values apart wider than inner: lda is honoured.
        const int64_t lda = inner + 3;
        const auto a = bf16_valued_matrix(rows, lda);
        const auto a_bits = a.to(torch::kBFloat16);
        const auto b = bf16_valued_matrix(inner, columns);
        const auto b_pairs = pairs_of(b);
        const auto product =
            a.narrow(1, 0, inner).to(torch::kDouble).mm(b.to(torch::kDouble));
        auto c = torch::full({rows, columns}, 123.f);  // all overwritten
        const auto* a_ptr = reinterpret_cast<const uint16_t*>(
            a_bits.const_data_ptr<c10::BFloat16>());
        mnv2::amx_products::multiply(a_ptr,
                                     lda,
                                     b_pairs.data(),
                                     c.data_ptr<float>(),
                                     rows,
                                     inner,
                                     columns,
                                     false);
        CHECK(relative_error(c, product) <= 1e-5);
        // Accumulating adds to what c holds.
        const auto start = torch::randn({rows, columns});
        auto sums = start.clone();
        mnv2::amx_products::multiply(a_ptr,
                                     lda,
                                     b_pairs.data(),
                                     sums.data_ptr<float>(),
                                     rows,
                                     inner,
                                     columns,
                                     true);
        CHECK(relative_error(sums, start.to(torch::kDouble) + product) <= 1e-5);
        mnv2::amx_products::release();
      }
    }
  }
}
