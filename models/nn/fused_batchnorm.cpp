#include <mobilenetv2/nn/fused_batchnorm.h>

#include "batchnorm_rows.h"
#include "batchnorm_terms.h"
#include "fused_batchnorm_loops.h"
#include "running_stats.h"

#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>
#include <ATen/record_function.h>
#include <torch/autograd.h>
#include <torch/torch.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <vector>

namespace mnv2 {

namespace {

std::atomic<bool> fused_batchnorm_on{true};

using batchnorm_terms::as_float;
using batchnorm_terms::moments;
using cpu_loops::elements;
using cpu_loops::mutable_elements;
using cpu_loops::with_elements;
using fused_batchnorm_loops::add_gradient_moments;
using fused_batchnorm_loops::add_moments;
using fused_batchnorm_loops::input_gradient;
using fused_batchnorm_loops::scale_shift_clamp;
using fused_batchnorm_loops::stored_clamp_bounds;

using batchnorm_rows::for_row_groups;
using batchnorm_rows::grouped_channel_sums;
using batchnorm_rows::repeated;
using batchnorm_rows::row_groups;

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

// The upstream gradient in the saved input's dtype and channels-last layout.
torch::Tensor contiguous_as(const torch::Tensor& grad,
                            const torch::Tensor& input) {
  const auto typed = grad.scalar_type() == input.scalar_type()
                         ? grad
                         : grad.to(input.scalar_type());
  return typed.contiguous(torch::MemoryFormat::ChannelsLast);
}

class FusedBatchNormReLU6
    : public torch::autograd::Function<FusedBatchNormReLU6> {
 public:
  static torch::Tensor forward(AutogradContext* ctx,
                               const torch::Tensor& input,
                               const torch::Tensor& weight,
                               const torch::Tensor& bias,
                               torch::Tensor running_mean,
                               torch::Tensor running_var,
                               double momentum,
                               double eps,
                               bool relu6) {
    // Named in profiles (bench/train_profile.py) as LibTorch's own ops are.
    RECORD_FUNCTION("mnv2::fused_batchnorm_relu6", std::vector<c10::IValue>());
    const int64_t channels = input.size(1);
    const int64_t rows = input.numel() / channels;
    const auto groups = row_groups(rows, channels);
    const auto w = as_float(weight);
    auto per_channel = batchnorm_terms::forward_terms(moments(input),
                                                      rows,
                                                      w,
                                                      as_float(bias),
                                                      running_mean,
                                                      running_var,
                                                      momentum,
                                                      eps);
    const float* kp = per_channel.const_data_ptr<float>();
    const float* sp = kp + channels;
    auto output = torch::empty_like(input);
    // Per group position; the first `channels` are the rows past the groups'.
    const auto k = repeated(kp, groups);
    const auto s = repeated(sp, groups);
    const float high = relu6 ? 6.f : INFINITY;
    const float low = relu6 ? 0.f : -INFINITY;
    with_elements(input, [&](const auto* x) {
      auto* y = mutable_elements(output, x);
      for_row_groups(groups, [&](int64_t offset, int64_t n, int64_t width) {
        scale_shift_clamp(
            x + offset, y + offset, n, width, k.data(), s.data(), low, high);
      });
      return 0;
    });
    ctx->save_for_backward({input, per_channel, w});
    ctx->saved_data["relu6"] = relu6;
    return output;
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto& input = saved[0];
    const bool relu6 = ctx->saved_data["relu6"].toBool();
    const auto grad = contiguous_as(grads[0], input);
    const int64_t channels = input.size(1);
    const int64_t rows = input.numel() / channels;
    const auto groups = row_groups(rows, channels);
    const float* per_channel = saved[1].const_data_ptr<float>();
    const auto scale = repeated(per_channel, groups);
    const auto shift = repeated(per_channel + channels, groups);
    const float* m = per_channel + 2 * channels;
    const auto means = repeated(m, groups);
    const float high = relu6 ? 6.f : INFINITY;
    const float low = relu6 ? 0.f : -INFINITY;
    const auto sums = with_elements(input, [&](const auto* x) {
      const auto* g = elements(grad, x);
      const auto bounds = stored_clamp_bounds(x, low, high);
      return grouped_channel_sums(
          groups,
          [&](int64_t offset, int64_t n, int64_t width, float* a, float* b) {
            add_gradient_moments(x + offset,
                                 g + offset,
                                 n,
                                 width,
                                 scale.data(),
                                 shift.data(),
                                 means.data(),
                                 bounds.low,
                                 bounds.high,
                                 a,
                                 b);
          });
    });
    auto terms = batchnorm_terms::backward_terms(
        sums, rows, per_channel, saved[2].const_data_ptr<float>());
    auto grad_input = torch::empty_like(input);
    const auto kg = repeated(terms.gain.data(), groups);
    const auto ks = repeated(terms.slope.data(), groups);
    const auto ko = repeated(terms.offset.data(), groups);
    with_elements(input, [&](const auto* x) {
      const auto* g = elements(grad, x);
      auto* dx = mutable_elements(grad_input, x);
      const auto bounds = stored_clamp_bounds(x, low, high);
      for_row_groups(groups, [&](int64_t offset, int64_t n, int64_t width) {
        input_gradient(x + offset,
                       g + offset,
                       dx + offset,
                       n,
                       width,
                       scale.data(),
                       shift.data(),
                       kg.data(),
                       ks.data(),
                       ko.data(),
                       bounds.low,
                       bounds.high);
      });
      return 0;
    });
    return {grad_input,
            terms.grad_weight,
            terms.grad_bias,
            torch::Tensor(),
            torch::Tensor(),
            torch::Tensor(),
            torch::Tensor(),
            torch::Tensor()};
  }
};

}  // namespace

namespace batchnorm_terms {

torch::Tensor as_float(const torch::Tensor& parameter) {
  if (parameter.scalar_type() == torch::kFloat && parameter.is_contiguous()) {
    return parameter;
  }
  return parameter.detach().to(torch::kFloat).contiguous();
}

std::vector<double> moments(const torch::Tensor& input) {
  const int64_t channels = input.size(1);
  const auto groups = row_groups(input.numel() / channels, channels);
  return with_elements(input, [&](const auto* x) {
    return grouped_channel_sums(
        groups,
        [&](int64_t offset, int64_t n, int64_t width, float* a, float* b) {
          add_moments(x + offset, n, width, a, b);
        });
  });
}

torch::Tensor forward_terms(const std::vector<double>& sums,
                            int64_t rows,
                            const torch::Tensor& weight,
                            const torch::Tensor& bias,
                            torch::Tensor& running_mean,
                            torch::Tensor& running_var,
                            double momentum,
                            double eps) {
  const int64_t channels = weight.numel();
  // Rows: scale, shift, mean, invstd (one allocation; backward needs all).
  auto per_channel = torch::empty({4, channels}, torch::kFloat);
  std::vector<float> unbiased(static_cast<size_t>(channels));
  const float* wp = weight.const_data_ptr<float>();
  const float* bp = bias.const_data_ptr<float>();
  float* kp = per_channel.data_ptr<float>();
  float* sp = kp + channels;
  float* mp = sp + channels;
  float* ip = mp + channels;
  for (int64_t c = 0; c < channels; ++c) {
    const double m = sums[static_cast<size_t>(c)] / rows;
    const double var =
        std::max(sums[static_cast<size_t>(channels + c)] / rows - m * m, 0.0);
    const double is = 1.0 / std::sqrt(var + eps);
    mp[c] = static_cast<float>(m);
    ip[c] = static_cast<float>(is);
    const double k = wp[c] * is;
    kp[c] = static_cast<float>(k);
    sp[c] = static_cast<float>(bp[c] - m * k);
    unbiased[static_cast<size_t>(c)] = static_cast<float>(
        var * static_cast<double>(rows) / static_cast<double>(rows - 1));
  }
  update_running_stats(running_mean, mp, momentum);
  update_running_stats(running_var, unbiased.data(), momentum);
  return per_channel;
}

BackwardTerms backward_terms(const std::vector<double>& sums,
                             int64_t rows,
                             const float* per_channel,
                             const float* weight) {
  const auto channels = static_cast<int64_t>(sums.size() / 2);
  const float* m = per_channel + 2 * channels;
  const float* ip = per_channel + 3 * channels;
  BackwardTerms t{torch::empty({channels}, torch::kFloat),
                  torch::empty({channels}, torch::kFloat),
                  std::vector<float>(static_cast<size_t>(channels)),
                  std::vector<float>(static_cast<size_t>(channels)),
                  std::vector<float>(static_cast<size_t>(channels))};
  // dx = k (g - sum_g / n - (x - mean) invstd^2 sum_gx / n), k = w invstd,
  // as dx = g k - x a + b per channel.
  float* gw = t.grad_weight.data_ptr<float>();
  float* gb = t.grad_bias.data_ptr<float>();
  for (int64_t c = 0; c < channels; ++c) {
    const auto i = static_cast<size_t>(c);
    const double is = ip[c];
    const double sum_g = sums[i];
    const double sum_gx = sums[static_cast<size_t>(channels) + i];
    gb[c] = static_cast<float>(sum_g);
    gw[c] = static_cast<float>(sum_gx * is);
    const double k = weight[c] * is;
    const double a = sum_g / static_cast<double>(rows);
    const double slope = is * is * sum_gx / static_cast<double>(rows);
    t.gain[i] = static_cast<float>(k);
    t.slope[i] = static_cast<float>(k * slope);
    t.offset[i] = static_cast<float>(k * (slope * m[c] - a));
  }
  return t;
}

}  // namespace batchnorm_terms

bool fused_batchnorm_applies(const torch::Tensor& input) {
  // fp32 outside autocast (under it BatchNorm would see another dtype), or
  // bf16 activations: autocast's, or a bf16 model's.
  const bool fp32 = input.scalar_type() == torch::kFloat &&
                    !at::autocast::is_autocast_enabled(c10::DeviceType::CPU);
  return input.device().is_cpu() &&
         (fp32 || input.scalar_type() == torch::kBFloat16) &&
         input.dim() == 4 &&
         input.is_contiguous(torch::MemoryFormat::ChannelsLast) &&
         input.numel() / std::max<int64_t>(input.size(1), 1) > 1;
}

torch::Tensor fused_batchnorm_relu6(const torch::Tensor& input,
                                    const torch::Tensor& weight,
                                    const torch::Tensor& bias,
                                    torch::Tensor running_mean,
                                    torch::Tensor running_var,
                                    double momentum,
                                    double eps,
                                    bool relu6) {
  return FusedBatchNormReLU6::apply(input,
                                    weight,
                                    bias,
                                    std::move(running_mean),
                                    std::move(running_var),
                                    momentum,
                                    eps,
                                    relu6);
}

bool fuses_training_batchnorm(const torch::nn::BatchNorm2dImpl& bn) {
  return fused_batchnorm_on && bn.is_training() &&
         bn.options.momentum().has_value() && bn.options.affine() &&
         bn.options.track_running_stats();
}

void count_training_batch(torch::nn::BatchNorm2dImpl& bn) {
  // As BatchNorm2d counts; an operator costs more than the addition.
  auto& count = bn.num_batches_tracked;
  if (count.device().is_cpu() && count.scalar_type() == torch::kLong &&
      count.numel() == 1) {
    ++*count.data_ptr<int64_t>();
    torch::autograd::impl::bump_version(count);
    return;
  }
  torch::NoGradGuard no_grad;
  count.add_(1);
}

torch::Tensor batchnorm_relu6(torch::nn::BatchNorm2dImpl& bn,
                              const torch::Tensor& input,
                              bool relu6) {
  if (fuses_training_batchnorm(bn) && fused_batchnorm_applies(input)) {
    count_training_batch(bn);
    return fused_batchnorm_relu6(input,
                                 bn.weight,
                                 bn.bias,
                                 bn.running_mean,
                                 bn.running_var,
                                 *bn.options.momentum(),
                                 bn.options.eps(),
                                 relu6);
  }
  auto output = bn.forward(input);
  return relu6 ? torch::hardtanh_(output, 0, 6) : output;
}

void set_fused_batchnorm_enabled(bool on) {
  fused_batchnorm_on = on;
}

bool fused_batchnorm_enabled() {
  return fused_batchnorm_on;
}

}  // namespace mnv2
