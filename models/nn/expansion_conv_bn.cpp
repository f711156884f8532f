#include <mobilenetv2/nn/expansion_conv_bn.h>
#include <mobilenetv2/util/cpu_features.h>

#include "amx_products.h"
#include "cpu_loops.h"
#include "expansion_parts.h"
#include "matrix_products.h"
#include "narrow_products.h"
#include "training_dtype.h"

#include <ATen/Parallel.h>
#include <ATen/record_function.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/autograd.h>
#include <torch/torch.h>

#include <algorithm>
#include <vector>

namespace mnv2 {

namespace {

using expansion_parts::as_rows;
using expansion_parts::kBlockRows;
using expansion_parts::uses_narrow_products;
using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

class ExpansionConvBNReLU6
    : public torch::autograd::Function<ExpansionConvBNReLU6> {
 public:
  static torch::Tensor forward(AutogradContext* ctx,
                               const torch::Tensor& input,
                               const torch::Tensor& conv_weight,
                               const torch::Tensor& bn_weight,
                               const torch::Tensor& bn_bias,
                               torch::Tensor running_mean,
                               torch::Tensor running_var,
                               double momentum,
                               double eps) {
    RECORD_FUNCTION("mnv2::expansion_conv_bn_relu6",
                    std::vector<c10::IValue>());
    const auto f = expansion_parts::forward(input,
                                            conv_weight,
                                            bn_weight,
                                            bn_bias,
                                            running_mean,
                                            running_var,
                                            momentum,
                                            eps);
    expansion_parts::save(ctx, f, conv_weight);
    return f.output;
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    const c10::impl::ExcludeDispatchKeyGuard no_autocast(
        c10::DispatchKey::AutocastCPU);
    const auto saved = expansion_parts::restore(ctx);
    const auto& f = saved.forward;
    const auto& conv_weight = saved.conv_weight;
    const int64_t in = f.centred.size(1), out = f.output.size(1);
    const int64_t pixels = f.centred.numel() / in;
    const auto grad = grads[0]
                          .to(f.output.scalar_type())
                          .contiguous(torch::MemoryFormat::ChannelsLast);
    const float* u = f.centred.const_data_ptr<float>();

    // The BatchNorm's input gradient is dx = scale g + slope (x - mean) +
    // offset per channel, and the input's du = dx W. Pass 1 computes sum(g),
    // G = sum(g u^T) and du = g (scale W), each block of g while it is in
    // cache; slope and offset need the sums, so their terms of du,
    // u (W^T slope W) + W^T offset, come in a second pass (finish()).
    auto du = torch::empty_like(f.centred);
    float* dup = du.data_ptr<float>();
    expansion_parts::BlockSums sums(f, conv_weight);
    cpu_loops::with_elements(f.output, [&](const auto* y) {
      const auto* dy = cpu_loops::elements(grad, y);
      cpu_loops::parallel_rows(
          pixels, kBlockRows, [&](int64_t begin, int64_t end) {
            torch::NoGradGuard no_grad;  // worker threads start with grad mode
            std::vector<float> g(static_cast<size_t>(kBlockRows * out));
            std::vector<float> g_sums(static_cast<size_t>(out));
            for (int64_t r = begin; r < end; r += kBlockRows) {
              const int64_t rows = std::min(kBlockRows, end - r);
              std::fill(g_sums.begin(), g_sums.end(), 0.f);
              expansion_parts::clamped_gradient(dy + r * out,
                                                y + r * out,
                                                g.data(),
                                                rows,
                                                out,
                                                g_sums.data());
              sums.add(g.data(), g_sums.data(), u + r * in, dup + r * in, rows);
            }
          });
      return 0;
    });
    auto grads_out = expansion_parts::finish(
        f, conv_weight, sums.totals(), du, f.output.scalar_type());
    grads_out.resize(8);
    return grads_out;
  }
};

}  // namespace

torch::Tensor expansion_conv_bn_relu6(const torch::Tensor& input,
                                      const torch::Tensor& conv_weight,
                                      const torch::Tensor& bn_weight,
                                      const torch::Tensor& bn_bias,
                                      torch::Tensor running_mean,
                                      torch::Tensor running_var,
                                      double momentum,
                                      double eps) {
  // Under bf16 autocast an fp32 input is cast (the weight is folded and
  // rounded in expansion_parts::forward).
  return ExpansionConvBNReLU6::apply(ComputationCast(input)(input),
                                     conv_weight,
                                     bn_weight,
                                     bn_bias,
                                     std::move(running_mean),
                                     std::move(running_var),
                                     momentum,
                                     eps);
}

bool expansion_conv_bn_relu6_applies(const torch::Tensor& input,
                                     int64_t out_channels) {
  if (!input.device().is_cpu() || input.dim() != 4 ||
      !torch::GradMode::is_enabled() ||
      !input.is_contiguous(torch::MemoryFormat::ChannelsLast)) {
    return false;
  }
  const auto dtype = cpu_computation_dtype(input);
  const bool fp32 = dtype == torch::kFloat;
  // bf16: where the backward's products are as fast as the unfused
  // layers' (AMX's tiles for AMX's, AVX512-BF16's pairs or our fp32 loops
  // where oneDNN has no tiles either).
  const bool bf16 = dtype == torch::kBFloat16 && cpu_has_native_bf16() &&
                    (!cpu_has_amx_bf16() || amx_products::available()) &&
                    narrow_products::apply(input.size(1));
  if (!fp32 && !bf16) {
    return false;
  }
  const int64_t pixels = input.numel() / std::max<int64_t>(input.size(1), 1);
  return pixels >= expansion_min_pixels(input.size(1)) &&
         out_channels >= kExpansionMinRatio * input.size(1);
}

int64_t expansion_min_pixels(int64_t in_channels) {
  return mkl_products_fastest() || uses_narrow_products(in_channels)
             ? kExpansionMinPixels
             : kExpansionMinPixelsSlowProducts;
}

}  // namespace mnv2
