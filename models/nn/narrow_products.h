#pragma once

// Products with a narrow side, [rows x inner] x [inner x columns] and
// a^T b over rows, for at most 64 columns in steps of 8 (MobileNetV2's
// block outputs at the big resolutions: 16, 24 and 32 channels). Private to
// nn/'s .cpp files.
//
// Why: MKL's sgemm takes its fast kernels on Intel CPUs only. On an AMD
// EPYC (Zen 4) it ran the expansions' block products at 60-77 GFLOP/s on
// one core; these loops, a tile of rows times the narrow side held in
// registers, run them at 107-117 (docs/benchmarks.md). At most twelve
// 8-float accumulators per tile, so that AVX2's sixteen registers hold a
// tile with its operands.

#include "cpu_loops.h"

#include <cstdint>

namespace mnv2::narrow_products {

inline constexpr int64_t kLanes = 8;
inline constexpr int64_t kMaxColumns = 64;

// Whether the loops below take a narrow side of `columns`.
inline bool apply(int64_t columns) {
  return columns > 0 && columns % kLanes == 0 && columns <= kMaxColumns;
}

namespace detail {

// Eight floats; the loops' loads and stores are unaligned.
typedef float Floats8 __attribute__((vector_size(32), aligned(4), may_alias));

#define MNV2_FLOATS8(pointer) (*reinterpret_cast<Floats8*>(pointer))
#define MNV2_CONST_FLOATS8(pointer) (*reinterpret_cast<const Floats8*>(pointer))

// Rows per tile for a narrow side of kN vectors: twelve accumulators.
template <int kN>
inline constexpr int kTileRows = kN >= 12 ? 1 : 12 / kN;

// c[rows x 8 kN] = a[rows x inner] b[inner x 8 kN], all row-major.
template <int kN>
MNV2_VECTOR_CLONES void rows_times_matrix(const float* __restrict a,
                                          const float* __restrict b,
                                          float* __restrict c,
                                          int64_t rows,
                                          int64_t inner) {
  constexpr int kRows = kTileRows<kN>;
  constexpr int64_t kColumns = kN * kLanes;
  int64_t r = 0;
  for (; r + kRows <= rows; r += kRows) {
    Floats8 sums[kRows][kN] = {};
    for (int64_t k = 0; k < inner; ++k) {
      Floats8 row_of_b[kN];
      for (int j = 0; j < kN; ++j) {
        row_of_b[j] = MNV2_CONST_FLOATS8(b + k * kColumns + j * kLanes);
      }
      for (int i = 0; i < kRows; ++i) {
        const float factor = a[(r + i) * inner + k];
        for (int j = 0; j < kN; ++j) {
          sums[i][j] += factor * row_of_b[j];
        }
      }
    }
    for (int i = 0; i < kRows; ++i) {
      for (int j = 0; j < kN; ++j) {
        MNV2_FLOATS8(c + (r + i) * kColumns + j * kLanes) = sums[i][j];
      }
    }
  }
  for (; r < rows; ++r) {
    Floats8 sums[kN] = {};
    for (int64_t k = 0; k < inner; ++k) {
      const float factor = a[r * inner + k];
      for (int j = 0; j < kN; ++j) {
        sums[j] += factor * MNV2_CONST_FLOATS8(b + k * kColumns + j * kLanes);
      }
    }
    for (int j = 0; j < kN; ++j) {
      MNV2_FLOATS8(c + r * kColumns + j * kLanes) = sums[j];
    }
  }
}

// c[a_columns x 8 kN] += a^T b for a [rows x a_columns], b [rows x 8 kN].
template <int kN>
MNV2_VECTOR_CLONES void add_transposed_product(const float* __restrict a,
                                               const float* __restrict b,
                                               float* __restrict c,
                                               int64_t rows,
                                               int64_t a_columns) {
  constexpr int kTile = kTileRows<kN>;
  constexpr int64_t kColumns = kN * kLanes;
  int64_t o = 0;
  for (; o + kTile <= a_columns; o += kTile) {
    Floats8 sums[kTile][kN];
    for (int i = 0; i < kTile; ++i) {
      for (int j = 0; j < kN; ++j) {
        sums[i][j] = MNV2_CONST_FLOATS8(c + (o + i) * kColumns + j * kLanes);
      }
    }
    for (int64_t r = 0; r < rows; ++r) {
      Floats8 row_of_b[kN];
      for (int j = 0; j < kN; ++j) {
        row_of_b[j] = MNV2_CONST_FLOATS8(b + r * kColumns + j * kLanes);
      }
      for (int i = 0; i < kTile; ++i) {
        const float factor = a[r * a_columns + o + i];
        for (int j = 0; j < kN; ++j) {
          sums[i][j] += factor * row_of_b[j];
        }
      }
    }
    for (int i = 0; i < kTile; ++i) {
      for (int j = 0; j < kN; ++j) {
        MNV2_FLOATS8(c + (o + i) * kColumns + j * kLanes) = sums[i][j];
      }
    }
  }
  for (; o < a_columns; ++o) {
    Floats8 sums[kN];
    for (int j = 0; j < kN; ++j) {
      sums[j] = MNV2_CONST_FLOATS8(c + o * kColumns + j * kLanes);
    }
    for (int64_t r = 0; r < rows; ++r) {
      const float factor = a[r * a_columns + o];
      for (int j = 0; j < kN; ++j) {
        sums[j] += factor * MNV2_CONST_FLOATS8(b + r * kColumns + j * kLanes);
      }
    }
    for (int j = 0; j < kN; ++j) {
      MNV2_FLOATS8(c + o * kColumns + j * kLanes) = sums[j];
    }
  }
}

#undef MNV2_FLOATS8
#undef MNV2_CONST_FLOATS8

// f.template operator()<kN>() for columns = 8 kN, kN in 1..8.
template <class F>
void with_vectors(int64_t columns, const F& f) {
  switch (columns / kLanes) {
    case 1:
      return f.template operator()<1>();
    case 2:
      return f.template operator()<2>();
    case 3:
      return f.template operator()<3>();
    case 4:
      return f.template operator()<4>();
    case 5:
      return f.template operator()<5>();
    case 6:
      return f.template operator()<6>();
    case 7:
      return f.template operator()<7>();
    default:
      return f.template operator()<8>();
  }
}

}  // namespace detail

// c[rows x columns] = a[rows x inner] b[inner x columns], row-major and
// dense; `columns` as apply() takes it.
inline void rows_times_matrix(const float* a,
                              const float* b,
                              float* c,
                              int64_t rows,
                              int64_t inner,
                              int64_t columns) {
  detail::with_vectors(columns, [&]<int kN>() {
    detail::rows_times_matrix<kN>(a, b, c, rows, inner);
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
  detail::with_vectors(columns, [&]<int kN>() {
    detail::add_transposed_product<kN>(a, b, c, rows, a_columns);
  });
}

}  // namespace mnv2::narrow_products
