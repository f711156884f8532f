#pragma once

// Matrix products of bf16 operands with fp32 sums, on AVX512-BF16's dot
// product of pairs (vdpbf16ps): each instruction multiplies eight pairs of
// bf16 values and adds both products into eight fp32 sums. Private to nn/'s
// .cpp files.
//
// Why: on an AMD EPYC (Zen 4) our fp32 loops (narrow_products.h) run the
// expansion's backward products at about 110 GFLOP/s per core, and the
// pairs take half the instructions for the same work. The sums stay fp32,
// as in oneDNN's bf16 products; only the operands are bf16.
//
// The second operand is stored as pairs of rows: [ceil(inner / 2)][columns]
// [2], row 2q's and row 2q + 1's value of a column side by side (an odd
// last row paired with zero), so that one vector load gives eight columns'
// pairs.

#include <cstdint>

namespace mnv2::bf16_products {

// Whether this CPU runs them: AVX512-BF16, and no oneDNN or ATen cap below
// 16-bit floats (cpu_has_avx512_bf16).
bool available();

// Whether the products take a side of `columns` (the vectors' side).
inline bool apply(int64_t columns) {
  return columns > 0 && columns % 8 == 0;
}

// Elements of pack_pairs' output for `rows` rows of `columns`.
inline int64_t pairs_size(int64_t rows, int64_t columns) {
  return (rows + 1) / 2 * 2 * columns;
}

// b [rows x columns] (row-major fp32, rounded to bf16 as c10::BFloat16) as
// pairs of rows into `pairs` (pairs_size(rows, columns) elements).
void pack_pairs(const float* b, int64_t rows, int64_t columns, uint16_t* pairs);
// The same from bf16 values (their bits), which it only moves.
void pack_pairs(const uint16_t* b,
                int64_t rows,
                int64_t columns,
                uint16_t* pairs);

// out[i] = values[i] rounded to bf16 (as c10::BFloat16), i < count.
void round_to_bf16(const float* values, int64_t count, uint16_t* out);

// c [rows x columns] = a [rows x inner] b: a bf16 row-major with an even
// `inner`, b [inner x columns] as pairs of rows; `columns` as apply().
void rows_times_pairs(const uint16_t* a,
                      const uint16_t* b_pairs,
                      float* c,
                      int64_t rows,
                      int64_t inner,
                      int64_t columns);

// c [a_columns x columns] += a^T b for a [rows x a_columns] and
// b [rows x columns], both as pairs of rows; `columns` as apply().
void add_transposed_pairs(const uint16_t* a_pairs,
                          const uint16_t* b_pairs,
                          float* c,
                          int64_t rows,
                          int64_t a_columns,
                          int64_t columns);

}  // namespace mnv2::bf16_products
