#include "bf16_products.h"

#include <mobilenetv2/util/cpu_features.h>

#include "cpu_loops.h"

#include <c10/util/Exception.h>

#include <cstring>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define MNV2_HAS_BF16_PAIRS 1
// The loops below only: the build itself targets plain x86-64, and
// available() keeps other CPUs out.
#define MNV2_BF16_PAIRS_TARGET \
  __attribute__((target("avx2,fma,avx512f,avx512vl,avx512bw,avx512bf16")))
#else
#define MNV2_HAS_BF16_PAIRS 0
#endif

namespace mnv2::bf16_products {

#if MNV2_HAS_BF16_PAIRS

namespace {

// Two bf16 values as one 32-bit element: the pair a dot product takes. Its
// loads may be 2-byte aligned.
inline uint32_t pair_at(const uint16_t* p) {
  uint32_t pair;
  std::memcpy(&pair, p, sizeof pair);
  return pair;
}

// One product's operands: c[t][j] = (c[t][j] if accumulate, else 0) +
// sum over q < pairs of f(t, q) . b[q][j], where f(t, q) is the pair at
// f + 2 (t f_row + q f_step) and b[q] is row q of pairs (ldb values apart).
struct PairProduct {
  const uint16_t* f;
  int64_t f_row, f_step;
  const uint16_t* b;
  int64_t ldb;
  float* c;
  int64_t ldc, pairs;
  bool accumulate;
};

// Rows t, ..., t + kRows - 1 of c, 8 kN columns from b's and c's start.
template <int kN, int kRows>
MNV2_BF16_PAIRS_TARGET inline void pair_tile(const PairProduct& p, int64_t t) {
  const uint16_t* f = p.f + 2 * t * p.f_row;
  float* c = p.c + t * p.ldc;
  __m256 sums[kRows][kN];
  for (int i = 0; i < kRows; ++i) {
    for (int j = 0; j < kN; ++j) {
      sums[i][j] = p.accumulate ? _mm256_loadu_ps(c + i * p.ldc + j * 8)
                                : _mm256_setzero_ps();
    }
  }
  for (int64_t q = 0; q < p.pairs; ++q) {
    __m256bh row_of_b[kN];
    for (int j = 0; j < kN; ++j) {
      row_of_b[j] = (__m256bh)_mm256_loadu_si256(
          reinterpret_cast<const __m256i*>(p.b + q * p.ldb + j * 16));
    }
    for (int i = 0; i < kRows; ++i) {
      const auto factor = (__m256bh)_mm256_set1_epi32(
          static_cast<int>(pair_at(f + 2 * (i * p.f_row + q * p.f_step))));
      for (int j = 0; j < kN; ++j) {
        sums[i][j] = _mm256_dpbf16_ps(sums[i][j], factor, row_of_b[j]);
      }
    }
  }
  for (int i = 0; i < kRows; ++i) {
    for (int j = 0; j < kN; ++j) {
      _mm256_storeu_ps(c + i * p.ldc + j * 8, sums[i][j]);
    }
  }
}

// Up to 24 accumulators of AVX-512's 32 vector registers, which leaves
// room for a row of b and the factor.
template <int kN>
inline constexpr int kPairTileRows = 24 / kN;

// All `rows` rows of c: tiles of kPairTileRows, then one row at a time.
template <int kN>
MNV2_BF16_PAIRS_TARGET void pair_rows(const PairProduct& p, int64_t rows) {
  constexpr int kRows = kPairTileRows<kN>;
  int64_t t = 0;
  for (; t + kRows <= rows; t += kRows) {
    pair_tile<kN, kRows>(p, t);
  }
  for (; t < rows; ++t) {
    pair_tile<kN, 1>(p, t);
  }
}

// pair_rows over blocks of the columns: 32 at a time (four vectors), then
// one block of the rest; b's and c's columns `columns` wide.
void pair_rows_over_columns(PairProduct p, int64_t rows, int64_t columns) {
  const uint16_t* b = p.b;
  float* c = p.c;
  for (int64_t first = 0; first < columns;) {
    const int64_t vectors = std::min<int64_t>(4, (columns - first) / 8);
    p.b = b + 2 * first;
    p.c = c + first;
    switch (vectors) {
      case 1:
        pair_rows<1>(p, rows);
        break;
      case 2:
        pair_rows<2>(p, rows);
        break;
      case 3:
        pair_rows<3>(p, rows);
        break;
      default:
        pair_rows<4>(p, rows);
        break;
    }
    first += 8 * vectors;
  }
}

}  // namespace

bool available() {
  static const bool has = cpu_has_avx512_bf16();
  return has;
}

void rows_times_pairs(const uint16_t* a,
                      const uint16_t* b_pairs,
                      float* c,
                      int64_t rows,
                      int64_t inner,
                      int64_t columns) {
  TORCH_INTERNAL_ASSERT(available() && apply(columns) && inner % 2 == 0);
  // a's row t holds its pairs side by side: pair q of row t at 2 (t inner
  // / 2 + q).
  pair_rows_over_columns(
      {a, inner / 2, 1, b_pairs, 2 * columns, c, columns, inner / 2, false},
      rows,
      columns);
}

void add_transposed_pairs(const uint16_t* a_pairs,
                          const uint16_t* b_pairs,
                          float* c,
                          int64_t rows,
                          int64_t a_columns,
                          int64_t columns) {
  TORCH_INTERNAL_ASSERT(available() && apply(columns));
  // Row t of c takes a's column t: its pair q at 2 (t + q a_columns).
  pair_rows_over_columns({a_pairs,
                          1,
                          a_columns,
                          b_pairs,
                          2 * columns,
                          c,
                          columns,
                          (rows + 1) / 2,
                          true},
                         a_columns,
                         columns);
}

#else  // no AVX512-BF16 loops in this build

bool available() {
  return false;
}

void rows_times_pairs(
    const uint16_t*, const uint16_t*, float*, int64_t, int64_t, int64_t) {
  TORCH_INTERNAL_ASSERT(false, "bf16_products: not in this build");
}

void add_transposed_pairs(
    const uint16_t*, const uint16_t*, float*, int64_t, int64_t, int64_t) {
  TORCH_INTERNAL_ASSERT(false, "bf16_products: not in this build");
}

#endif

namespace {

inline uint16_t as_bf16(float value) {
  return cpu_loops::to_bf16(value);
}
inline uint16_t as_bf16(uint16_t bits) {
  return bits;
}

template <class T>
MNV2_VECTOR_CLONES void pack_pairs_of(const T* __restrict b,
                                      int64_t rows,
                                      int64_t columns,
                                      uint16_t* __restrict pairs) {
  int64_t r = 0;
  for (; r + 1 < rows; r += 2) {
    uint16_t* out = pairs + r * columns;  // pair row r / 2
    const T* first = b + r * columns;
    const T* second = first + columns;
    for (int64_t c = 0; c < columns; ++c) {
      out[2 * c] = as_bf16(first[c]);
      out[2 * c + 1] = as_bf16(second[c]);
    }
  }
  if (r < rows) {  // an odd last row, paired with zero
    for (int64_t c = 0; c < columns; ++c) {
      pairs[r * columns + 2 * c] = as_bf16(b[r * columns + c]);
      pairs[r * columns + 2 * c + 1] = 0;
    }
  }
}

}  // namespace

void pack_pairs(const float* b,
                int64_t rows,
                int64_t columns,
                uint16_t* pairs) {
  pack_pairs_of(b, rows, columns, pairs);
}

void pack_pairs(const uint16_t* b,
                int64_t rows,
                int64_t columns,
                uint16_t* pairs) {
  pack_pairs_of(b, rows, columns, pairs);
}

MNV2_VECTOR_CLONES void round_to_bf16(const float* __restrict values,
                                      int64_t count,
                                      uint16_t* __restrict out) {
  for (int64_t i = 0; i < count; ++i) {
    out[i] = cpu_loops::to_bf16(values[i]);
  }
}

}  // namespace mnv2::bf16_products
