#include <mobilenetv2/nn/expansion_conv_bn.h>
#include <mobilenetv2/nn/expansion_depthwise.h>

#include "cpu_loops.h"
#include "depthwise_loops.h"
#include "expansion_parts.h"
#include "training_dtype.h"

#include <ATen/Parallel.h>
#include <ATen/record_function.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/autograd.h>
#include <torch/torch.h>

#include <algorithm>
#include <type_traits>
#include <vector>

namespace mnv2 {

namespace {

using depthwise_loops::DepthwiseShape;
using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

constexpr int64_t kDepthwisePadding = 1;

class ExpansionDepthwise
    : public torch::autograd::Function<ExpansionDepthwise> {
 public:
  static torch::Tensor forward(AutogradContext* ctx,
                               const torch::Tensor& input,
                               const torch::Tensor& conv_weight,
                               const torch::Tensor& bn_weight,
                               const torch::Tensor& bn_bias,
                               torch::Tensor running_mean,
                               torch::Tensor running_var,
                               double momentum,
                               double eps,
                               const torch::Tensor& depthwise_weight,
                               int64_t stride) {
    RECORD_FUNCTION("mnv2::expansion_depthwise", std::vector<c10::IValue>());
    const int64_t channels = conv_weight.size(0);
    TORCH_CHECK(
        depthwise_weight.sizes() == torch::IntArrayRef({channels, 1, 3, 3}),
        "expansion_depthwise: a [",
        channels,
        ", 1, 3, 3] depthwise weight, got ",
        depthwise_weight.sizes());
    const auto f = expansion_parts::forward(input,
                                            conv_weight,
                                            bn_weight,
                                            bn_bias,
                                            running_mean,
                                            running_var,
                                            momentum,
                                            eps);
    auto output = torch::conv2d(
        f.output, depthwise_weight, {}, stride, kDepthwisePadding, 1, channels);
    expansion_parts::save(ctx, f, conv_weight, {depthwise_weight});
    ctx->saved_data["stride"] = stride;
    return output;
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    const c10::impl::ExcludeDispatchKeyGuard no_autocast(
        c10::DispatchKey::AutocastCPU);
    const auto saved = expansion_parts::restore(ctx);
    const auto& f = saved.forward;
    const auto& conv_weight = saved.conv_weight;
    const auto& depthwise_weight = saved.more[0];
    const auto stride = ctx->saved_data["stride"].toInt();
    const auto& z = f.output;  // the expansion's output, channels last
    const auto grad = grads[0]
                          .to(z.scalar_type())
                          .contiguous(torch::MemoryFormat::ChannelsLast);
    const int64_t images = z.size(0), channels = z.size(1);
    const int64_t in = f.centred.size(1);
    const DepthwiseShape s{z.size(2),
                           z.size(3),
                           grad.size(2),
                           grad.size(3),
                           channels,
                           3,
                           stride,
                           kDepthwisePadding};
    const auto rows = depthwise_loops::covering_taps(s.in_h, s.out_h, s);
    const auto cols = depthwise_loops::covering_taps(s.in_w, s.out_w, s);
    const auto taps = depthwise_loops::kernel_as_taps(depthwise_weight);
    const int64_t image_pixels = s.in_h * s.in_w;
    // Whole rows of the expanded map per block, about the expansion's block.
    const int64_t block_rows =
        std::max<int64_t>(1, expansion_parts::kBlockRows / s.in_w);

    auto du = torch::empty_like(f.centred);
    expansion_parts::BlockSums sums(f, conv_weight);
    auto depthwise_partial =
        torch::zeros({at::get_num_threads(), 9 * channels});
    const float* u = f.centred.const_data_ptr<float>();
    const float* kernel = taps.const_data_ptr<float>();
    float* dup = du.data_ptr<float>();
    float* dw = depthwise_partial.data_ptr<float>();
    // fp32, or bf16 activations as their bits: the expanded output's
    // gradient is then rounded to bf16 as the unfused depthwise backward
    // writes it, and masked and multiplied in fp32.
    cpu_loops::with_elements(z, [&](const auto* zp) {
      using T = std::remove_cv_t<std::remove_pointer_t<decltype(zp)>>;
      const T* dy = cpu_loops::elements(grad, zp);
      cpu_loops::parallel_rows(images, 1, [&](int64_t begin, int64_t end) {
        torch::NoGradGuard no_grad;  // worker threads start with grad mode
        const auto block = static_cast<size_t>(block_rows * s.in_w * channels);
        std::vector<T> dz(block);
        // g in fp32, or in bf16 as rows and pairs of rows where the sums
        // take bf16 products (bf16 activations only).
        constexpr bool kBf16 = std::is_same_v<T, uint16_t>;
        const bool bf16_products = kBf16 && sums.takes_bf16();
        std::vector<float> g(bf16_products ? 0 : block);
        std::vector<uint16_t> g_rows(bf16_products ? block : 0);
        std::vector<uint16_t> g_pairs(bf16_products ? block + channels : 0);
        std::vector<float> g_sums(static_cast<size_t>(channels));
        float* own = dw + at::get_thread_num() * 9 * channels;
        for (int64_t n = begin; n < end; ++n) {
          const T* image_grad = dy + n * s.out_h * s.out_w * channels;
          const T* image_z = zp + n * image_pixels * channels;
          for (int64_t r0 = 0; r0 < s.in_h; r0 += block_rows) {
            const int64_t count = std::min(block_rows, s.in_h - r0);
            // The expanded output's gradient for these rows, from the
            // depthwise output's, in cache.
            for (int64_t r = r0; r < r0 + count; ++r) {
              depthwise_loops::depthwise_input_gradient_row(
                  image_grad,
                  kernel,
                  dz.data() + (r - r0) * s.in_w * channels,
                  r,
                  rows,
                  cols,
                  s);
            }
            const int64_t pixels = count * s.in_w;
            const int64_t first = n * image_pixels + r0 * s.in_w;
            std::fill(g_sums.begin(), g_sums.end(), 0.f);
            const T* block_z = image_z + r0 * s.in_w * channels;
            if constexpr (kBf16) {
              if (bf16_products) {
                expansion_parts::clamped_gradient_pairs(dz.data(),
                                                        block_z,
                                                        g_rows.data(),
                                                        g_pairs.data(),
                                                        pixels,
                                                        channels,
                                                        g_sums.data());
                sums.add_bf16(g_rows.data(),
                              g_pairs.data(),
                              g_sums.data(),
                              u + first * in,
                              dup + first * in,
                              pixels);
                continue;
              }
            }
            expansion_parts::clamped_gradient(
                dz.data(), block_z, g.data(), pixels, channels, g_sums.data());
            sums.add(g.data(),
                     g_sums.data(),
                     u + first * in,
                     dup + first * in,
                     pixels);
          }
          // The depthwise weight's gradient while this image's expanded
          // output is still in cache.
          depthwise_loops::add_image_weight_gradient(
              image_grad, image_z, own, s);
        }
      });
      return 0;
    });
    auto result = expansion_parts::finish(
        f, conv_weight, sums.totals(), du, z.scalar_type());
    result.resize(10);
    result[8] =
        depthwise_loops::taps_as_kernel(depthwise_partial, depthwise_weight);
    return result;
  }
};

}  // namespace

torch::Tensor expansion_depthwise(const torch::Tensor& input,
                                  const torch::Tensor& conv_weight,
                                  const torch::Tensor& bn_weight,
                                  const torch::Tensor& bn_bias,
                                  torch::Tensor running_mean,
                                  torch::Tensor running_var,
                                  double momentum,
                                  double eps,
                                  const torch::Tensor& depthwise_weight,
                                  int64_t stride) {
  TORCH_CHECK(stride == 1 || stride == 2,
              "expansion_depthwise: stride 1 or 2, got ",
              stride);
  // Under bf16 autocast the fp32 input and depthwise weight are cast (the
  // expansion's weight is folded and rounded in expansion_parts::forward).
  const ComputationCast cast(input);
  return ExpansionDepthwise::apply(cast(input),
                                   conv_weight,
                                   bn_weight,
                                   bn_bias,
                                   std::move(running_mean),
                                   std::move(running_var),
                                   momentum,
                                   eps,
                                   cast(depthwise_weight),
                                   stride);
}

bool expansion_depthwise_applies(const torch::Tensor& input,
                                 int64_t out_channels,
                                 int64_t depthwise_kernel,
                                 int64_t depthwise_stride) {
  return depthwise_kernel == 3 &&
         (depthwise_stride == 1 || depthwise_stride == 2) &&
         expansion_conv_bn_relu6_applies(input, out_channels);
}

}  // namespace mnv2
