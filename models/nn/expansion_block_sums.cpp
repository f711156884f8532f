// The expansion's backward, its first pass (expansion_parts.h): the clamp's
// mask on each block of the output's gradient, and the block's products
// into the sums the finishing pass takes, on our fp32 loops, LibTorch's
// products, AVX512-BF16's pairs or AMX's tiles.
#include "expansion_parts.h"

#include "amx_products.h"
#include "bf16_products.h"
#include "narrow_products.h"

#include <ATen/Parallel.h>
#include <c10/util/BFloat16.h>
#include <torch/torch.h>

#include <algorithm>
#include <vector>

namespace mnv2::expansion_parts {

namespace {

// a [rows x columns] fp32 as its transpose [columns x width] in bf16 (as
// c10::BFloat16 rounds), zero from `rows` to `width` in each row.
void transposed_to_bf16(const float* a,
                        int64_t rows,
                        int64_t columns,
                        int64_t width,
                        uint16_t* out) {
  for (int64_t c = 0; c < columns; ++c) {
    uint16_t* row = out + c * width;
    for (int64_t r = 0; r < rows; ++r) {
      row[r] = c10::BFloat16(a[r * columns + c]).x;
    }
    std::fill(row + rows, row + width, uint16_t{0});
  }
}

}  // namespace

MNV2_VECTOR_CLONES void clamped_gradient_pairs(const uint16_t* __restrict dy,
                                               const uint16_t* __restrict y,
                                               uint16_t* __restrict g,
                                               uint16_t* __restrict g_pairs,
                                               int64_t rows,
                                               int64_t channels,
                                               float* __restrict sums) {
  const auto masked = [&](int64_t i) -> uint16_t {
    const float out = cpu_loops::load(y, i);
    return out > 0.f && out < 6.f ? dy[i] : uint16_t{0};
  };
  // A pair of rows at a time; pair row r / 2 starts where row r does.
  for (int64_t r = 0; r < rows; r += 2) {
    const int64_t o = r * channels;
    if (r + 1 < rows) {
      for (int64_t c = 0; c < channels; ++c) {
        const uint16_t first = masked(o + c);
        const uint16_t second = masked(o + channels + c);
        g[o + c] = first;
        g[o + channels + c] = second;
        g_pairs[o + 2 * c] = first;
        g_pairs[o + 2 * c + 1] = second;
        sums[c] += cpu_loops::load(&first, 0) + cpu_loops::load(&second, 0);
      }
    } else {  // an odd last row, paired with zero
      for (int64_t c = 0; c < channels; ++c) {
        const uint16_t first = masked(o + c);
        g[o + c] = first;
        g_pairs[o + 2 * c] = first;
        g_pairs[o + 2 * c + 1] = 0;
        sums[c] += cpu_loops::load(&first, 0);
      }
    }
  }
}

BlockSums::BlockSums(const Forward& saved, const torch::Tensor& conv_weight)
    : in_(saved.centred.size(1)),
      out_(saved.output.size(1)),
      narrow_(uses_narrow_products(in_)),
      pairs_(saved.output.scalar_type() == torch::kBFloat16 &&
             bf16_products::available() && bf16_products::apply(in_) &&
             out_ % 2 == 0),
      amx_(pairs_ && amx_products::available()),
      g_weight_((saved.scale.unsqueeze(1) *
                 conv_weight.reshape({out_, in_}).to(torch::kDouble))
                    .to(torch::kFloat)
                    .contiguous()),
      block_g_u_(static_cast<size_t>(at::get_num_threads() * out_ * in_)),
      partial_(static_cast<size_t>(at::get_num_threads() * (out_ * in_ + out_)),
               0.0) {
  if (!pairs_) {
    return;
  }
  g_weight_pairs_.resize(
      static_cast<size_t>(bf16_products::pairs_size(out_, in_)));
  bf16_products::pack_pairs(
      g_weight_.const_data_ptr<float>(), out_, in_, g_weight_pairs_.data());
  if (amx_) {
    u_columns_.resize(
        static_cast<size_t>(at::get_num_threads() * in_ * kBlockColumns));
  } else {
    u_pairs_.resize(static_cast<size_t>(
        at::get_num_threads() * bf16_products::pairs_size(kBlockRows, in_)));
  }
}

void BlockSums::add(const float* g,
                    const float* g_sums,
                    const float* u,
                    float* du,
                    int64_t rows) {
  const int64_t thread = at::get_thread_num();
  // This block's g^T u, in the thread's own scratch (no allocation per block).
  float* bg = block_g_u_.data() + thread * out_ * in_;
  if (narrow_) {
    std::fill(bg, bg + out_ * in_, 0.f);
    narrow_products::add_transposed_product(g, u, bg, rows, out_, in_);
    narrow_products::rows_times_matrix(
        g, g_weight_.const_data_ptr<float>(), du, rows, out_, in_);
  } else {
    const auto block = rows_of(g, rows, out_);
    auto block_g_u = rows_of(bg, out_, in_);
    torch::mm_out(block_g_u, block.t(), rows_of(u, rows, in_));
    auto block_du = rows_of(du, rows, in_);
    torch::mm_out(block_du, block, g_weight_);
  }
  add_block_sums(bg, g_sums);
}

void BlockSums::add_bf16(const uint16_t* g,
                         const uint16_t* g_pairs,
                         const float* g_sums,
                         const float* u,
                         float* du,
                         int64_t rows) {
  TORCH_INTERNAL_ASSERT(pairs_);
  const int64_t thread = at::get_thread_num();
  if (amx_) {  // the products on AMX's tiles
    // u^T g [in x out] in the thread's scratch, then transposed into g^T u.
    float* ug = block_g_u_.data() + thread * out_ * in_;
    uint16_t* ut = u_columns_.data() + thread * in_ * kBlockColumns;
    for (int64_t r = 0; r < rows; r += kBlockRows) {
      const int64_t count = std::min(kBlockRows, rows - r);
      const int64_t even = count + count % 2;  // g's pairs: an odd row and 0
      transposed_to_bf16(u + r * in_, count, in_, even, ut);
      amx_products::multiply(
          ut, even, g_pairs + r * out_, ug, in_, even, out_, r > 0);
      amx_products::multiply(g + r * out_,
                             out_,
                             g_weight_pairs_.data(),
                             du + r * in_,
                             count,
                             out_,
                             in_,
                             false);
    }
    amx_products::release();
    add_block_sums(ug, g_sums, true);
    return;
  }
  float* bg = block_g_u_.data() + thread * out_ * in_;
  uint16_t* up =
      u_pairs_.data() + thread * bf16_products::pairs_size(kBlockRows, in_);
  std::fill(bg, bg + out_ * in_, 0.f);
  // u's pairs in chunks of the scratch's rows (an even count, so that g's
  // pairs of rows start where its rows do).
  for (int64_t r = 0; r < rows; r += kBlockRows) {
    const int64_t count = std::min(kBlockRows, rows - r);
    bf16_products::pack_pairs(u + r * in_, count, in_, up);
    bf16_products::add_transposed_pairs(
        g_pairs + r * out_, up, bg, count, out_, in_);
  }
  bf16_products::rows_times_pairs(
      g, g_weight_pairs_.data(), du, rows, out_, in_);
  add_block_sums(bg, g_sums);
}

void BlockSums::add_block_sums(const float* block_g_u,
                               const float* g_sums,
                               bool transposed) {
  double* own = partial_.data() + at::get_thread_num() * (out_ * in_ + out_);
  for (int64_t o = 0; o < out_; ++o) {
    for (int64_t i = 0; i < in_; ++i) {
      own[o * in_ + i] +=
          transposed ? block_g_u[i * out_ + o] : block_g_u[o * in_ + i];
    }
  }
  for (int64_t o = 0; o < out_; ++o) {
    own[out_ * in_ + o] += g_sums[o];
  }
}

torch::Tensor BlockSums::totals() const {
  const int64_t width = out_ * in_ + out_;
  auto totals = torch::zeros({width}, torch::kDouble);
  for (size_t t = 0; t < partial_.size(); t += static_cast<size_t>(width)) {
    totals += torch::from_blob(
        const_cast<double*>(partial_.data()) + t, {width}, torch::kDouble);
  }
  return totals;
}

}  // namespace mnv2::expansion_parts
