#include <mobilenetv2/nn/batchnorm_projection.h>
#include <mobilenetv2/nn/pointwise_conv.h>
#include <mobilenetv2/util/cpu_features.h>

#include "batchnorm_rows.h"
#include "batchnorm_terms.h"
#include "bf16_products.h"
#include "cpu_loops.h"
#include "fused_batchnorm_loops.h"
#include "gradient_layout.h"
#include "narrow_products.h"
#include "training_dtype.h"

#include <ATen/Parallel.h>
#include <ATen/record_function.h>
#include <torch/autograd.h>
#include <torch/torch.h>

#include <algorithm>
#include <type_traits>
#include <vector>

namespace mnv2 {

namespace {

using fused_batchnorm_loops::add_gradient_moments;
using fused_batchnorm_loops::input_gradient_in_place;
using fused_batchnorm_loops::scale_shift_clamp;
using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

// Pixels normalised into cache at a time: 128 rows of 144 channels (74 KB)
// and their gradient stay in a core's L2 beside the block being read.
constexpr int64_t kProjectionBlockRows = 128;
// Rows whose BatchNorm sums add up in fp32 before they go into double, as
// the fused BatchNorm's; kProjectionBlockRows is a multiple of it.
constexpr int64_t kProjectionRowsPerFloatSum =
    batchnorm_rows::kFusedRowsPerFloatSum;
static_assert(kProjectionBlockRows % kProjectionRowsPerFloatSum == 0);
constexpr float kReLU6Low = 0.f, kReLU6High = 6.f;

// The rows as blocks, walked in parallel tasks of up to four blocks (fewer
// where a thread would wait): f(first row, rows) per block.
template <class F>
void over_projection_blocks(int64_t rows, const F& f) {
  const int64_t blocks =
      (rows + kProjectionBlockRows - 1) / kProjectionBlockRows;
  const int64_t threads = std::max(1, at::get_num_threads());
  const int64_t per_task =
      std::clamp<int64_t>((blocks + threads - 1) / threads, 1, 4);
  cpu_loops::parallel_rows(blocks, per_task, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      const int64_t first = b * kProjectionBlockRows;
      f(first, std::min(kProjectionBlockRows, rows - first));
    }
  });
}

// A thread's scratch for one block's normalised activations (fp32, or bf16
// as its bits), and for the products' fp32 sums in bf16.
template <class T>
std::vector<T>& projection_scratch(int64_t channels) {
  thread_local std::vector<T> block;
  block.resize(static_cast<size_t>(kProjectionBlockRows * channels));
  return block;
}

// The projection's weight as one side of a block's products: fp32 for our
// fp32 loops (narrow_products.h), or bf16 pairs of rows for AVX512-BF16's
// (bf16_products.h), whose fp32 sums are rounded to bf16 as the unfused
// bf16 layers store them.
class ProjectionMatrix {
 public:
  // `matrix` [inner, columns] fp32, for activations of `like`'s dtype.
  ProjectionMatrix(const torch::Tensor& matrix, const torch::Tensor& like)
      : inner_(matrix.size(0)), columns_(matrix.size(1)) {
    if (like.scalar_type() == torch::kFloat) {
      fp32_ = matrix;
      return;
    }
    pairs_.resize(
        static_cast<size_t>(bf16_products::pairs_size(inner_, columns_)));
    bf16_products::pack_pairs(
        matrix.const_data_ptr<float>(), inner_, columns_, pairs_.data());
  }
  // c [rows, columns] = a [rows, inner] times the matrix.
  void multiply(const float* a, float* c, int64_t rows) const {
    narrow_products::rows_times_matrix(
        a, fp32_.const_data_ptr<float>(), c, rows, inner_, columns_);
  }
  void multiply(const uint16_t* a, uint16_t* c, int64_t rows) const {
    auto& sums = projection_scratch<float>(columns_);
    bf16_products::rows_times_pairs(
        a, pairs_.data(), sums.data(), rows, inner_, columns_);
    bf16_products::round_to_bf16(sums.data(), rows * columns_, c);
  }
  // c [inner, columns] += g^T a for g [rows, inner] and a [rows, columns]:
  // the weight's gradient, in the matrix's orientation.
  void add_transposed(const float* g,
                      const float* a,
                      float* c,
                      int64_t rows) const {
    narrow_products::add_transposed_product(g, a, c, rows, inner_, columns_);
  }
  void add_transposed(const uint16_t* g,
                      const uint16_t* a,
                      float* c,
                      int64_t rows) const {
    thread_local std::vector<uint16_t> g_pairs, a_pairs;
    g_pairs.resize(
        static_cast<size_t>(bf16_products::pairs_size(rows, inner_)));
    a_pairs.resize(
        static_cast<size_t>(bf16_products::pairs_size(rows, columns_)));
    bf16_products::pack_pairs(g, rows, inner_, g_pairs.data());
    bf16_products::pack_pairs(a, rows, columns_, a_pairs.data());
    bf16_products::add_transposed_pairs(
        g_pairs.data(), a_pairs.data(), c, rows, inner_, columns_);
  }

 private:
  int64_t inner_, columns_;
  torch::Tensor fp32_;
  std::vector<uint16_t> pairs_;
};

// Whether our products compute the projection in the dtype the layer
// computes in: fp32 where pointwise_own_products_fp32 says so; bf16 on
// AVX512-BF16 without AMX (whose tiles make oneDNN's bf16 products several
// times faster), for the same narrow shapes.
bool own_projection_products(const torch::Tensor& input, int64_t out) {
  const int64_t channels = input.size(1);
  switch (cpu_computation_dtype(input).value_or(torch::kHalf)) {
    case torch::kFloat:
      return pointwise_own_products_fp32(channels, out);
    case torch::kBFloat16:
      return bf16_products::available() && !cpu_has_amx_bf16() &&
             bf16_products::apply(channels) && bf16_products::apply(out) &&
             std::min(channels, out) <= kPointwiseOwnMaxNarrowSide;
    default:
      return false;
  }
}

class BatchNormReLU6Projection
    : public torch::autograd::Function<BatchNormReLU6Projection> {
 public:
  static torch::Tensor forward(AutogradContext* ctx,
                               const torch::Tensor& input,
                               const torch::Tensor& bn_weight,
                               const torch::Tensor& bn_bias,
                               torch::Tensor running_mean,
                               torch::Tensor running_var,
                               double momentum,
                               double eps,
                               const torch::Tensor& conv_weight) {
    RECORD_FUNCTION("mnv2::batchnorm_relu6_projection",
                    std::vector<c10::IValue>());
    const int64_t channels = input.size(1), out = conv_weight.size(0);
    TORCH_CHECK(conv_weight.numel() == out * channels,
                "batchnorm_relu6_projection: a [",
                out,
                ", ",
                channels,
                ", 1, 1] weight, got ",
                conv_weight.sizes());
    const int64_t rows = input.numel() / channels;
    const auto w = batchnorm_terms::as_float(bn_weight);
    auto per_channel =
        batchnorm_terms::forward_terms(batchnorm_terms::moments(input),
                                       rows,
                                       w,
                                       batchnorm_terms::as_float(bn_bias),
                                       running_mean,
                                       running_var,
                                       momentum,
                                       eps);
    // The products' right side: the [channels, out] transposed weight.
    const ProjectionMatrix right(
        conv_weight.reshape({out, channels}).t().contiguous(), input);
    auto output = torch::empty(
        {input.size(0), out, input.size(2), input.size(3)},
        input.options().memory_format(torch::MemoryFormat::ChannelsLast));
    const float* scale = per_channel.const_data_ptr<float>();
    const float* shift = scale + channels;
    cpu_loops::with_elements(input, [&](const auto* x) {
      using T = std::remove_cv_t<std::remove_pointer_t<decltype(x)>>;
      T* y = cpu_loops::mutable_elements(output, x);
      over_projection_blocks(rows, [&](int64_t first, int64_t n) {
        auto& a = projection_scratch<T>(channels);
        scale_shift_clamp(x + first * channels,
                          a.data(),
                          n,
                          channels,
                          scale,
                          shift,
                          kReLU6Low,
                          kReLU6High);
        right.multiply(a.data(), y + first * out, n);
      });
      return 0;
    });
    ctx->save_for_backward({input, per_channel, w, conv_weight});
    return output;
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto& input = saved[0];
    const auto& conv_weight = saved[3];
    const int64_t channels = input.size(1), out = conv_weight.size(0);
    const int64_t rows = input.numel() / channels;
    const auto grad = grads[0]
                          .to(input.scalar_type())
                          .contiguous(torch::MemoryFormat::ChannelsLast);
    const ProjectionMatrix matrix(
        conv_weight.reshape({out, channels}).contiguous(), input);
    const float* per_channel = saved[1].const_data_ptr<float>();
    const float* scale = per_channel;
    const float* shift = per_channel + channels;
    const float* mean = per_channel + 2 * channels;

    // First pass: the weight's gradient from the normalised activations,
    // computed again into cache; the activations' gradient (dy times the
    // weight) and the BatchNorm's sums from it.
    auto activations_grad = torch::empty_like(input);
    const int64_t sums_width = 2 * channels;
    const int64_t width = sums_width + out * channels;
    std::vector<double> partial(
        static_cast<size_t>(at::get_num_threads() * width), 0.0);
    cpu_loops::with_elements(input, [&](const auto* x) {
      using T = std::remove_cv_t<std::remove_pointer_t<decltype(x)>>;
      const T* dy = cpu_loops::elements(grad, x);
      T* d = cpu_loops::mutable_elements(activations_grad, x);
      over_projection_blocks(rows, [&](int64_t first, int64_t n) {
        auto& a = projection_scratch<T>(channels);
        const T* xb = x + first * channels;
        const T* dyb = dy + first * out;
        T* db = d + first * channels;
        scale_shift_clamp(
            xb, a.data(), n, channels, scale, shift, kReLU6Low, kReLU6High);
        std::vector<float> block_sums(static_cast<size_t>(width), 0.f);
        matrix.add_transposed(dyb, a.data(), block_sums.data() + sums_width, n);
        matrix.multiply(dyb, db, n);
        double* own = partial.data() + at::get_thread_num() * width;
        for (int64_t r = 0; r < n; r += kProjectionRowsPerFloatSum) {
          std::fill(block_sums.begin(), block_sums.begin() + sums_width, 0.f);
          add_gradient_moments(xb + r * channels,
                               db + r * channels,
                               std::min(kProjectionRowsPerFloatSum, n - r),
                               channels,
                               scale,
                               shift,
                               mean,
                               kReLU6Low,
                               kReLU6High,
                               block_sums.data(),
                               block_sums.data() + channels);
          for (int64_t i = 0; i < sums_width; ++i) {
            own[i] += block_sums[static_cast<size_t>(i)];
          }
        }
        for (int64_t i = sums_width; i < width; ++i) {
          own[i] += block_sums[static_cast<size_t>(i)];
        }
      });
      return 0;
    });
    std::vector<double> sums(static_cast<size_t>(sums_width), 0.0);
    auto grad_matrix = torch::empty({out, channels}, torch::kFloat);
    float* gm = grad_matrix.data_ptr<float>();
    for (int64_t i = 0; i < width; ++i) {
      double total = 0;
      for (size_t t = static_cast<size_t>(i); t < partial.size();
           t += static_cast<size_t>(width)) {
        total += partial[t];
      }
      if (i < sums_width) {
        sums[static_cast<size_t>(i)] = total;
      } else {
        gm[i - sums_width] = static_cast<float>(total);
      }
    }
    auto terms = batchnorm_terms::backward_terms(
        sums, rows, per_channel, saved[2].const_data_ptr<float>());

    // Second pass: the input's gradient, as the fused BatchNorm's, over the
    // activations' gradient.
    cpu_loops::with_elements(input, [&](const auto* x) {
      auto* d = cpu_loops::mutable_elements(activations_grad, x);
      over_projection_blocks(rows, [&](int64_t first, int64_t n) {
        input_gradient_in_place(x + first * channels,
                                d + first * channels,
                                n,
                                channels,
                                scale,
                                shift,
                                terms.gain.data(),
                                terms.slope.data(),
                                terms.offset.data(),
                                kReLU6Low,
                                kReLU6High);
      });
      return 0;
    });
    return {activations_grad,
            terms.grad_weight,
            terms.grad_bias,
            torch::Tensor(),
            torch::Tensor(),
            torch::Tensor(),
            torch::Tensor(),
            in_strides_of(grad_matrix.view(conv_weight.sizes()), conv_weight)};
  }
};

}  // namespace

torch::Tensor batchnorm_relu6_projection(const torch::Tensor& input,
                                         const torch::Tensor& bn_weight,
                                         const torch::Tensor& bn_bias,
                                         torch::Tensor running_mean,
                                         torch::Tensor running_var,
                                         double momentum,
                                         double eps,
                                         const torch::Tensor& conv_weight) {
  // Under bf16 autocast an fp32 input is cast; the weight is rounded to
  // bf16 in the products.
  const ComputationCast cast(input);
  return BatchNormReLU6Projection::apply(cast(input),
                                         bn_weight,
                                         bn_bias,
                                         std::move(running_mean),
                                         std::move(running_var),
                                         momentum,
                                         eps,
                                         conv_weight);
}

bool batchnorm_relu6_projection_applies(const torch::Tensor& input,
                                        int64_t out_channels) {
  return input.device().is_cpu() && input.dim() == 4 &&
         torch::GradMode::is_enabled() &&
         input.is_contiguous(torch::MemoryFormat::ChannelsLast) &&
         input.numel() / std::max<int64_t>(input.size(1), 1) > 1 &&
         own_projection_products(input, out_channels);
}

}  // namespace mnv2
