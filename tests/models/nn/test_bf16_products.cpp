// Our bf16 products (AVX512-BF16's pairs, the bf16 expansions' backward on
// such CPUs) against LibTorch's in double on the same bf16 operands: odd
// row counts, tiles with and without a remainder, every block width and
// wider sides. The layout of pairs of rows against LibTorch's rounding to
// bf16, on every host.
#include "test_support.h"

#include <catch2/catch.hpp>

#include "../models/nn/bf16_products.h"

#include <vector>

namespace {

using mnv2::test::bf16_valued_matrix;
using mnv2::test::relative_error;

// pack_pairs of an fp32 matrix, as a [ceil(rows / 2), columns, 2] bf16
// tensor.
torch::Tensor packed_pairs(const torch::Tensor& b) {
  const int64_t rows = b.size(0), columns = b.size(1);
  auto pairs = torch::empty({(rows + 1) / 2, columns, 2}, torch::kBFloat16);
  REQUIRE(pairs.numel() == mnv2::bf16_products::pairs_size(rows, columns));
  mnv2::bf16_products::pack_pairs(
      b.const_data_ptr<float>(),
      rows,
      columns,
      reinterpret_cast<uint16_t*>(pairs.data_ptr<c10::BFloat16>()));
  return pairs;
}

const uint16_t* bits(const torch::Tensor& t) {
  return reinterpret_cast<const uint16_t*>(t.const_data_ptr<c10::BFloat16>());
}

}  // namespace

TEST_CASE("bf16 pairs of rows hold LibTorch's bf16 rounding side by side",
          "[model][fused]") {
  namespace products = mnv2::bf16_products;
  CHECK(products::apply(16));
  CHECK(products::apply(24));
  CHECK_FALSE(products::apply(0));
  CHECK_FALSE(products::apply(20));
  torch::manual_seed(5);
  for (const int64_t rows : {1, 6, 7}) {
    CAPTURE(rows);
    // Values between bf16 steps, so that the rounding matters.
    const auto b = torch::randn({rows, 9});
    const auto pairs = packed_pairs(b);
    // Row 2q's value of column c at [q][c][0], row 2q + 1's at [q][c][1];
    // an odd last row with zero.
    auto expected = torch::zeros({(rows + 1) / 2 * 2, 9}, torch::kBFloat16);
    expected.narrow(0, 0, rows).copy_(b.to(torch::kBFloat16));
    expected = expected.view({(rows + 1) / 2, 2, 9}).permute({0, 2, 1});
    CHECK(torch::equal(pairs, expected));
  }
}

TEST_CASE("the bf16 products equal LibTorch's in double on bf16 values",
          "[model][fused]") {
  namespace products = mnv2::bf16_products;
  if (!products::available()) {
    WARN("no AVX512-BF16 on this CPU (or capped below it): products skipped");
    return;
  }
  torch::manual_seed(12);
  for (const int64_t columns : {8, 16, 24, 32, 40, 64, 96}) {
    for (const int64_t rows : {1, 13, 1031}) {
      for (const int64_t inner : {2, 16, 96, 146}) {
        CAPTURE(columns, rows, inner);
        // a b: a [rows x inner] in bf16 rows, b as pairs of rows.
        const auto a = bf16_valued_matrix(rows, inner);
        const auto b = bf16_valued_matrix(inner, columns);
        auto c = torch::full({rows, columns}, 123.f);  // all overwritten
        products::rows_times_pairs(bits(a.to(torch::kBFloat16)),
                                   bits(packed_pairs(b)),
                                   c.data_ptr<float>(),
                                   rows,
                                   inner,
                                   columns);
        const auto product = a.to(torch::kDouble).mm(b.to(torch::kDouble));
        CHECK(relative_error(c, product) <= 1e-5);

        // a^T d added to what the output holds, both as pairs of rows: a
        // [rows x inner] as the wide factor, d [rows x columns] the narrow.
        const auto d = bf16_valued_matrix(rows, columns);
        const auto start = torch::randn({inner, columns});
        auto sums = start.clone();
        products::add_transposed_pairs(bits(packed_pairs(a)),
                                       bits(packed_pairs(d)),
                                       sums.data_ptr<float>(),
                                       rows,
                                       inner,
                                       columns);
        const auto expected = start.to(torch::kDouble) +
                              a.to(torch::kDouble).t().mm(d.to(torch::kDouble));
        CHECK(relative_error(sums, expected) <= 1e-5);
      }
    }
  }
}
