#pragma once

// bf16 matrix products on AMX tiles, through the batch-reduce GEMM kernel
// (oneDNN's ukernel) that LibTorch exports, with fp32 sums. Private to
// nn/'s .cpp files.
//
// Why: on an Intel Xeon with AMX, oneDNN's tiles run the expansion's
// backward products (block by block, in cache) at 400-1,500 GFLOP/s per
// core where AVX512-BF16's pairs (bf16_products.h) run at a fraction of
// that, so the moment trick's backward pays for itself there too
// (docs/benchmarks.md).
//
// The second operand is bf16_products.h's pairs of rows, which is the
// kernel's own (VNNI) layout for bf16.

#include <cstdint>

namespace mnv2::amx_products {

// Whether this LibTorch exports the kernel and oneDNN may use AMX-BF16 here
// (cpu_has_amx_bf16: present and not capped by ONEDNN_MAX_CPU_ISA).
bool available();

// c [rows x columns] = a b (+ c where accumulate): a [rows x inner] bf16
// row-major with rows lda values apart, `inner` even; b [inner x columns]
// as pairs of rows. Runs on the calling thread.
void multiply(const uint16_t* a,
              int64_t lda,
              const uint16_t* b_pairs,
              float* c,
              int64_t rows,
              int64_t inner,
              int64_t columns,
              bool accumulate);

// Hands the calling thread's tiles back after a run of multiply().
void release();

}  // namespace mnv2::amx_products
