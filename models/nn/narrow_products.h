#pragma once

// Matrix products a b and a^T b whose columns (b's and c's) are a multiple
// of 8, taken in blocks of up to 32 columns: a tile of rows times one block
// is held in registers while the inner dimension runs. Fast where the
// columns are few (MobileNetV2's 16, 24 and 32 channels at the big
// resolutions) and the rows many. Private to nn/'s .cpp files.
//
// Why: MKL's sgemm takes its fast kernels on Intel CPUs only. On an AMD
// EPYC (Zen 4) it ran the expansions' block products at 60-77 GFLOP/s on
// one core; these loops ran them at 97-117 (docs/benchmarks.md). At most
// twelve 8-float accumulators per tile, so that AVX2's sixteen registers
// hold a tile with its operands.

#include "cpu_loops.h"

#include <cstdint>

namespace mnv2::narrow_products {

inline constexpr int64_t kLanes = 8;

// Whether the loops below take a side of `columns`.
inline bool apply(int64_t columns) {
  return columns > 0 && columns % kLanes == 0;
}

// Whether blocks of 32 columns run on AVX-512's 16-float vectors: on Intel
// CPUs with AVX-512 (cpu_has_avx512), whose two 512-bit FMA units double
// the 8-float loops' rate (narrow_products.cpp). AMD's Zen 4 splits a
// 512-bit FMA into two 256-bit halves, so the 8-float loops keep it.
bool wide_lanes();

// Turns the wide lanes off (tests: both forms on one host); on by default.
void set_wide_lanes_enabled(bool on);

namespace detail {

// Eight floats; the loops' loads and stores are unaligned.
typedef float Floats8 __attribute__((vector_size(32), aligned(4), may_alias));

#define MNV2_FLOATS8(pointer) (*reinterpret_cast<Floats8*>(pointer))
#define MNV2_CONST_FLOATS8(pointer) (*reinterpret_cast<const Floats8*>(pointer))

// Rows per tile for a narrow side of kN vectors: twelve accumulators.
template <int kN>
inline constexpr int kTileRows = kN >= 12 ? 1 : 12 / kN;

// c[t][j] = (c[t][j] if accumulate, else 0) + sum over q < count of
// f[t * f_row + q * f_step] b[q * ldb + j], for each of `rows` rows t of c
// and 8 kN columns j: a b with f_row = lda, f_step = 1, and a^T b with
// f_row = 1, f_step = lda. kTileRows<kN> rows of c at a time, then one.
template <int kN>
MNV2_VECTOR_CLONES void product_rows(const float* __restrict f,
                                     int64_t f_row,
                                     int64_t f_step,
                                     const float* __restrict b,
                                     int64_t ldb,
                                     float* __restrict c,
                                     int64_t ldc,
                                     int64_t rows,
                                     int64_t count,
                                     bool accumulate) {
  const auto tile = [&]<int kRows>(int64_t t) {
    Floats8 sums[kRows][kN] = {};
    if (accumulate) {
      for (int i = 0; i < kRows; ++i) {
        for (int j = 0; j < kN; ++j) {
          sums[i][j] = MNV2_CONST_FLOATS8(c + (t + i) * ldc + j * kLanes);
        }
      }
    }
    for (int64_t q = 0; q < count; ++q) {
      Floats8 row_of_b[kN];
      for (int j = 0; j < kN; ++j) {
        row_of_b[j] = MNV2_CONST_FLOATS8(b + q * ldb + j * kLanes);
      }
      for (int i = 0; i < kRows; ++i) {
        const float factor = f[(t + i) * f_row + q * f_step];
        for (int j = 0; j < kN; ++j) {
          sums[i][j] += factor * row_of_b[j];
        }
      }
    }
    for (int i = 0; i < kRows; ++i) {
      for (int j = 0; j < kN; ++j) {
        MNV2_FLOATS8(c + (t + i) * ldc + j * kLanes) = sums[i][j];
      }
    }
  };
  constexpr int kRows = kTileRows<kN>;
  int64_t t = 0;
  for (; t + kRows <= rows; t += kRows) {
    tile.template operator()<kRows>(t);
  }
  for (; t < rows; ++t) {
    tile.template operator()<1>(t);
  }
}

#undef MNV2_FLOATS8
#undef MNV2_CONST_FLOATS8

// One product_rows call's operands.
struct BlockProduct {
  const float* f;
  int64_t f_row, f_step;
  const float* b;
  int64_t ldb;
  float* c;
  int64_t ldc, rows, count;
  bool accumulate;
};

// product_rows<4> (32 columns) on 16-float vectors, twelve rows per tile
// (narrow_products.cpp). Only where wide_lanes().
void wide_product_rows(const BlockProduct& p);

// product_rows<kN>, or its wide form for a block of 32 columns.
template <int kN>
inline void block_product_rows(const float* f,
                               int64_t f_row,
                               int64_t f_step,
                               const float* b,
                               int64_t ldb,
                               float* c,
                               int64_t ldc,
                               int64_t rows,
                               int64_t count,
                               bool accumulate) {
  if constexpr (kN == 4) {
    if (wide_lanes()) {
      return wide_product_rows(
          {f, f_row, f_step, b, ldb, c, ldc, rows, count, accumulate});
    }
  }
  product_rows<kN>(f, f_row, f_step, b, ldb, c, ldc, rows, count, accumulate);
}

// f.template operator()<kN>(first) over blocks of the columns, 8 kN
// each from column `first`: blocks of 32 (four vectors, three rows per
// tile) and one block of the rest.
template <class F>
void over_column_blocks(int64_t columns, const F& f) {
  int64_t first = 0;
  if (columns > 4 * kLanes) {
    for (; first + 4 * kLanes <= columns; first += 4 * kLanes) {
      f.template operator()<4>(first);
    }
  }
  switch ((columns - first) / kLanes) {
    case 1:
      return f.template operator()<1>(first);
    case 2:
      return f.template operator()<2>(first);
    case 3:
      return f.template operator()<3>(first);
    case 4:
      return f.template operator()<4>(first);
    default:
      return;
  }
}

}  // namespace detail

// c[rows x columns] = a[rows x inner] b[inner x columns], or c += a b
// with `accumulate`; row-major and dense, `columns` as apply() takes it.
inline void rows_times_matrix(const float* a,
                              const float* b,
                              float* c,
                              int64_t rows,
                              int64_t inner,
                              int64_t columns,
                              bool accumulate = false) {
  detail::over_column_blocks(columns, [&]<int kN>(int64_t first) {
    detail::block_product_rows<kN>(a,
                                   inner,
                                   1,
                                   b + first,
                                   columns,
                                   c + first,
                                   columns,
                                   rows,
                                   inner,
                                   accumulate);
  });
}

// c[a_columns x columns] += a^T b for a [rows x a_columns] and
// b [rows x columns], row-major and dense; `columns` as apply() takes it.
inline void add_transposed_product(const float* a,
                                   const float* b,
                                   float* c,
                                   int64_t rows,
                                   int64_t a_columns,
                                   int64_t columns) {
  detail::over_column_blocks(columns, [&]<int kN>(int64_t first) {
    detail::block_product_rows<kN>(a,
                                   1,
                                   a_columns,
                                   b + first,
                                   columns,
                                   c + first,
                                   columns,
                                   a_columns,
                                   rows,
                                   true);
  });
}

// The same on fp32 tensors (made dense: a channel slice of a channels-last
// tensor has its rows further apart), in parallel over the rows on
// LibTorch's threads (narrow_products.cpp). `columns` of b and m as apply()
// takes them.

// a [rows x inner] m [inner x columns].
torch::Tensor product(const torch::Tensor& a, const torch::Tensor& m);

// c += a m, c dense [rows x columns].
void add_product(torch::Tensor& c,
                 const torch::Tensor& a,
                 const torch::Tensor& m);

// a^T b for a [rows x m] and b [rows x n]: sums over blocks of rows in
// fp32, added up in fp64.
torch::Tensor transposed_product(const torch::Tensor& a,
                                 const torch::Tensor& b);

}  // namespace mnv2::narrow_products
