#include <mobilenetv2/nn/batchnorm_projection.h>
#include <mobilenetv2/nn/pointwise_conv.h>

#include "batchnorm_rows.h"
#include "batchnorm_terms.h"
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

// A thread's scratch for one block's normalised activations.
std::vector<float>& projection_scratch(int64_t channels) {
  thread_local std::vector<float> block;
  block.resize(static_cast<size_t>(kProjectionBlockRows * channels));
  return block;
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
    const auto right = conv_weight.reshape({out, channels}).t().contiguous();
    auto output = torch::empty(
        {input.size(0), out, input.size(2), input.size(3)},
        input.options().memory_format(torch::MemoryFormat::ChannelsLast));
    const float* x = input.const_data_ptr<float>();
    const float* scale = per_channel.const_data_ptr<float>();
    const float* shift = scale + channels;
    const float* m = right.const_data_ptr<float>();
    float* y = output.data_ptr<float>();
    over_projection_blocks(rows, [&](int64_t first, int64_t n) {
      auto& a = projection_scratch(channels);
      scale_shift_clamp(x + first * channels,
                        a.data(),
                        n,
                        channels,
                        scale,
                        shift,
                        kReLU6Low,
                        kReLU6High);
      narrow_products::rows_times_matrix(
          a.data(), m, y + first * out, n, channels, out);
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
                          .to(torch::kFloat)
                          .contiguous(torch::MemoryFormat::ChannelsLast);
    const auto matrix = conv_weight.reshape({out, channels}).contiguous();
    const float* x = input.const_data_ptr<float>();
    const float* dy = grad.const_data_ptr<float>();
    const float* m = matrix.const_data_ptr<float>();
    const float* per_channel = saved[1].const_data_ptr<float>();
    const float* scale = per_channel;
    const float* shift = per_channel + channels;
    const float* mean = per_channel + 2 * channels;

    // First pass: the weight's gradient from the normalised activations,
    // computed again into cache; the activations' gradient (dy times the
    // weight) and the BatchNorm's sums from it.
    auto activations_grad = torch::empty_like(input);
    float* d = activations_grad.data_ptr<float>();
    const int64_t sums_width = 2 * channels;
    const int64_t width = sums_width + out * channels;
    std::vector<double> partial(
        static_cast<size_t>(at::get_num_threads() * width), 0.0);
    over_projection_blocks(rows, [&](int64_t first, int64_t n) {
      auto& a = projection_scratch(channels);
      const float* xb = x + first * channels;
      const float* dyb = dy + first * out;
      float* db = d + first * channels;
      scale_shift_clamp(
          xb, a.data(), n, channels, scale, shift, kReLU6Low, kReLU6High);
      std::vector<float> block_sums(static_cast<size_t>(width), 0.f);
      narrow_products::add_transposed_product(
          dyb, a.data(), block_sums.data() + sums_width, n, out, channels);
      narrow_products::rows_times_matrix(dyb, m, db, n, out, channels);
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
  return BatchNormReLU6Projection::apply(input,
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
         cpu_computation_dtype(input) == torch::kFloat &&
         input.is_contiguous(torch::MemoryFormat::ChannelsLast) &&
         input.numel() / std::max<int64_t>(input.size(1), 1) > 1 &&
         pointwise_own_products_fp32(input.size(1), out_channels);
}

}  // namespace mnv2
