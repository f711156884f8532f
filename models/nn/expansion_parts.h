#pragma once

// The expansion's moment trick in parts (expansion_conv_bn.cpp), shared by
// the expansion alone and by the expansion with the depthwise convolution
// after it (expansion_depthwise.cpp). Private to nn/'s .cpp files.

#include "cpu_loops.h"

#include <torch/autograd.h>
#include <torch/types.h>

#include <cstdint>
#include <vector>

namespace mnv2::expansion_parts {

// Pixels per block of the backward: 1024 rows of up to 960 fp32 gradients
// stay in a core's L2 between the clamp's mask and the products.
inline constexpr int64_t kBlockRows = 1024;

// What the forward leaves for the backward: the clamped output, the input
// centred on its mean (fp32), its scatter matrix (fp64) and the BatchNorm's
// invstd and scale = gamma invstd (fp64).
struct Forward {
  torch::Tensor output, centred, scatter, invstd, scale;
};

// The expansion's forward: the BatchNorm's statistics from the input's
// moments, the BatchNorm folded into the convolution, the running
// statistics updated (expansion_conv_bn_relu6).
Forward forward(const torch::Tensor& input,
                const torch::Tensor& conv_weight,
                const torch::Tensor& bn_weight,
                const torch::Tensor& bn_bias,
                torch::Tensor& running_mean,
                torch::Tensor& running_var,
                double momentum,
                double eps);

// Keeps f and the convolution's weight in ctx for the backward, with
// `more` after them; restore() gives them back.
void save(torch::autograd::AutogradContext* ctx,
          const Forward& f,
          const torch::Tensor& conv_weight,
          const std::vector<torch::Tensor>& more = {});
struct Saved {
  Forward forward;
  torch::Tensor conv_weight;
  std::vector<torch::Tensor> more;
};
Saved restore(torch::autograd::AutogradContext* ctx);

// g = the output's gradient where the clamp passed it (0 < y < 6, the mask
// hardtanh_backward takes on the stored output), else 0, in fp32 from fp32
// or bf16 activations; adds g's column sums into `sums`.
template <class T, class U>
MNV2_VECTOR_CLONES void clamped_gradient(const U* __restrict dy,
                                         const T* __restrict y,
                                         float* __restrict g,
                                         int64_t rows,
                                         int64_t channels,
                                         float* __restrict sums) {
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t o = r * channels;
    for (int64_t c = 0; c < channels; ++c) {
      const float out = cpu_loops::load(y, o + c);
      const float v = out > 0.f && out < 6.f ? cpu_loops::load(dy, o + c) : 0.f;
      g[o + c] = v;
      sums[c] += v;
    }
  }
}

// The same for bf16 gradients, which g keeps exactly (the gradient or 0):
// g as rows [rows x channels] and as pairs of rows (bf16_products.h).
void clamped_gradient_pairs(const uint16_t* dy,
                            const uint16_t* y,
                            uint16_t* g,
                            uint16_t* g_pairs,
                            int64_t rows,
                            int64_t channels,
                            float* sums);

// The backward's first pass, per thread: G = sum(g u^T) and sum(g) in fp64
// over the blocks a thread adds, and du = g (scale W) for each block.
class BlockSums {
 public:
  BlockSums(const Forward& saved, const torch::Tensor& conv_weight);
  // A block of `rows` pixels: g [rows x out] and its column sums, the
  // centred input's rows u [rows x in]; writes du [rows x in]. Called on
  // LibTorch's threads, each adding into its own sums.
  void add(const float* g,
           const float* g_sums,
           const float* u,
           float* du,
           int64_t rows);
  // Whether add_bf16 takes the blocks: bf16 activations, on a CPU with
  // AVX512-BF16's products (bf16_products.h); their products then run on
  // AMX's tiles where oneDNN has them (amx_products.h).
  bool takes_bf16() const {
    return pairs_;
  }
  // The same with bf16 products: g as clamped_gradient_pairs gives it; u
  // and scale W rounded to bf16 as the unfused bf16 layers take them.
  void add_bf16(const uint16_t* g,
                const uint16_t* g_pairs,
                const float* g_sums,
                const float* u,
                float* du,
                int64_t rows);
  // sum(g u^T) [out, in] then sum(g) [out], over all threads, fp64.
  torch::Tensor totals() const;

 private:
  // Adds a block's g^T u (the thread's scratch; u^T g if transposed) and
  // g's sums into the thread's fp64 sums.
  void add_block_sums(const float* block_g_u,
                      const float* g_sums,
                      bool transposed = false);
  // A chunk's u^T in bf16: kBlockRows columns and an even count's zero.
  static constexpr int64_t kBlockColumns = kBlockRows + 2;

  int64_t in_, out_;
  bool narrow_, pairs_, amx_;
  torch::Tensor g_weight_;                // scale W, fp32 [out, in]
  std::vector<uint16_t> g_weight_pairs_;  // the same in bf16, pairs of rows
  std::vector<float> block_g_u_;          // per thread, one block's g^T u
  std::vector<uint16_t> u_pairs_;         // per thread, a block's u in bf16
  std::vector<uint16_t> u_columns_;       // the same as u^T on AMX
  std::vector<double> partial_;
};

// The gradients from the first pass's totals: the input's (du finished in a
// second pass over u and du, returned in `dtype`), the convolution
// weight's, gamma's and beta's.
torch::autograd::tensor_list finish(const Forward& saved,
                                    const torch::Tensor& conv_weight,
                                    const torch::Tensor& totals,
                                    torch::Tensor& du,
                                    torch::ScalarType dtype);

// Whether the backward's products (and the forward's scatter matrix) are
// ours: MKL's are slow off Intel CPUs; ours take in_channels a multiple of 8.
bool uses_narrow_products(int64_t in_channels);

// [N, C, H, W] channels_last as [N * H * W, C] (a view).
torch::Tensor as_rows(const torch::Tensor& t);

// A [rows, columns] matrix over `rows` pixels of a channels-last buffer.
inline torch::Tensor rows_of(const float* data, int64_t rows, int64_t columns) {
  return torch::from_blob(const_cast<float*>(data), {rows, columns});
}

}  // namespace mnv2::expansion_parts
