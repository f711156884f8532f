#include "amx_products.h"

#include <mobilenetv2/util/cpu_features.h>

#include <ATen/native/CPUBlas.h>
#include <c10/util/Exception.h>

namespace mnv2::amx_products {

// LibTorch defines this where it exports brgemm for bf16 with fp32 sums (a
// user's older LibTorch may not): without it, available() is false.
#if defined(CPUBLAS_BRGEMM_BF16BF16F32)

bool available() {
  static const bool yes =
      cpu_has_amx_bf16() && at::native::cpublas::could_pack(at::kBFloat16);
  return yes;
}

void multiply(const uint16_t* a,
              int64_t lda,
              const uint16_t* b_pairs,
              float* c,
              int64_t rows,
              int64_t inner,
              int64_t columns,
              bool accumulate) {
  TORCH_INTERNAL_ASSERT(inner % 2 == 0);
  at::native::cpublas::brgemm(rows,
                              columns,
                              inner,
                              lda,
                              columns,
                              columns,
                              accumulate,
                              reinterpret_cast<const at::BFloat16*>(a),
                              reinterpret_cast<const at::BFloat16*>(b_pairs),
                              c,
                              /*is_vnni=*/true);
}

void release() {
  at::native::cpublas::brgemm_release(/*is_vnni=*/true);
}

#else

bool available() {
  return false;
}

void multiply(const uint16_t*,
              int64_t,
              const uint16_t*,
              float*,
              int64_t,
              int64_t,
              int64_t,
              bool) {
  TORCH_INTERNAL_ASSERT(false, "amx_products: not in this LibTorch");
}

void release() {}

#endif

}  // namespace mnv2::amx_products
