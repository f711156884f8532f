// Our products for few columns (the expansions' backward and the narrow
// 1x1 layers off Intel's MKL and on Intel CPUs with AVX-512) against
// LibTorch's in fp64, on every host: odd row counts and inner sizes,
// tiles with and without a remainder, every block width and wider sides.
#include "test_support.h"

#include <catch2/catch.hpp>

#include "../models/nn/narrow_products.h"

namespace {

using mnv2::test::relative_error;

torch::Tensor narrow_test_matrix(int64_t rows, int64_t columns) {
  return torch::randn({rows, columns});
}

// Each product on matrices of every block width against LibTorch's in
// fp64.
void check_narrow_products() {
  namespace products = mnv2::narrow_products;
  for (const int64_t columns : {8, 16, 24, 32, 40, 48, 56, 64, 96, 144, 200}) {
    for (const int64_t rows : {1, 13, 1031}) {
      for (const int64_t inner : {1, 7, 96, 145}) {
        CAPTURE(columns, rows, inner);
        const auto a = narrow_test_matrix(rows, inner);
        const auto b = narrow_test_matrix(inner, columns);
        auto c = torch::full({rows, columns}, 123.f);  // all overwritten
        products::rows_times_matrix(a.const_data_ptr<float>(),
                                    b.const_data_ptr<float>(),
                                    c.data_ptr<float>(),
                                    rows,
                                    inner,
                                    columns);
        const auto product = a.to(torch::kDouble).mm(b.to(torch::kDouble));
        CHECK(relative_error(c, product) <= 1e-5);
        // Added to what the output holds.
        const auto held = narrow_test_matrix(rows, columns);
        auto added = held.clone();
        products::rows_times_matrix(a.const_data_ptr<float>(),
                                    b.const_data_ptr<float>(),
                                    added.data_ptr<float>(),
                                    rows,
                                    inner,
                                    columns,
                                    true);
        CHECK(relative_error(added, held.to(torch::kDouble) + product) <= 1e-5);

        // a^T d added to what the output holds: a [rows x inner] as the
        // wide factor, d [rows x columns] as the narrow one.
        const auto d = narrow_test_matrix(rows, columns);
        const auto start = narrow_test_matrix(inner, columns);
        auto sums = start.clone();
        products::add_transposed_product(a.const_data_ptr<float>(),
                                         d.const_data_ptr<float>(),
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

}  // namespace

TEST_CASE("the narrow products equal LibTorch's in double", "[model][fused]") {
  namespace products = mnv2::narrow_products;
  CHECK(products::apply(16));
  CHECK(products::apply(64));
  CHECK_FALSE(products::apply(0));
  CHECK_FALSE(products::apply(20));
  CHECK(products::apply(72));
  torch::manual_seed(11);
  // On 16-float vectors where this CPU takes them (an Intel one with
  // AVX-512), then on 8-float ones.
  const bool wide = products::wide_lanes();
  CAPTURE(wide);
  for (const bool wide_lanes : {true, false}) {
    if (wide_lanes && !wide) {
      continue;
    }
    products::set_wide_lanes_enabled(wide_lanes);
    CHECK(products::wide_lanes() == wide_lanes);
    check_narrow_products();
  }
  products::set_wide_lanes_enabled(true);
}
