#include <mobilenetv2/nn/expansion_conv_bn.h>
#include <mobilenetv2/util/cpu_features.h>

#include "cpu_loops.h"
#include "matrix_products.h"
#include "narrow_products.h"
#include "running_stats.h"
#include "training_dtype.h"

#include <ATen/Parallel.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/record_function.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/autograd.h>
#include <torch/torch.h>

#include <algorithm>
#include <optional>
#include <vector>

namespace mnv2 {

namespace {

// Pixels per block of the backward: 1024 rows of up to 960 fp32 gradients
// stay in a core's L2 between the clamp's mask and the products.
constexpr int64_t kExpansionBlockRows = 1024;

// oneDNN's convolution with a clamp after it (the operator torch.compile
// fuses to), where this LibTorch has it with the signature below.
using ConvolutionPointwise = at::Tensor(const at::Tensor&,
                                        const at::Tensor&,
                                        const std::optional<at::Tensor>&,
                                        c10::IntArrayRef,
                                        c10::IntArrayRef,
                                        c10::IntArrayRef,
                                        int64_t,
                                        c10::string_view,
                                        c10::List<std::optional<at::Scalar>>,
                                        std::optional<c10::string_view>);

std::optional<c10::TypedOperatorHandle<ConvolutionPointwise>>
onednn_convolution_pointwise() {
  const auto op = c10::Dispatcher::singleton().findSchema(
      {"mkldnn::_convolution_pointwise", ""});
  if (!op || !op->hasKernelForDispatchKey(c10::DispatchKey::CPU)) {
    return std::nullopt;
  }
  try {
    return op->typed<ConvolutionPointwise>();
  } catch (const c10::Error&) {  // another signature in another version
    return std::nullopt;
  }
}

// clamp(conv2d(input, weight, bias), 0, 6) for a 1x1 convolution. oneDNN's
// refuses bf16 on a CPU (or under an instruction-set cap) without AVX-512;
// LibTorch's convolution then emulates it.
torch::Tensor convolution_relu6(const torch::Tensor& input,
                                const torch::Tensor& weight,
                                const torch::Tensor& bias) {
  static const auto fused = onednn_convolution_pointwise();
  if (fused &&
      (input.scalar_type() == torch::kFloat || cpu_has_native_bf16())) {
    c10::List<std::optional<at::Scalar>> bounds;
    bounds.push_back(at::Scalar(0.0));
    bounds.push_back(at::Scalar(6.0));
    return fused->call(
        input, weight, bias, {0, 0}, {1, 1}, {1, 1}, 1, "hardtanh", bounds, {});
  }
  return torch::conv2d(input, weight, bias.to(input.scalar_type()))
      .clamp_(0, 6);
}

// Whether the backward's products (and the forward's scatter matrix) are
// ours: MKL's are slow off Intel CPUs; ours take in_channels a multiple of 8.
bool uses_narrow_products(int64_t in_channels) {
  return fp32_products() != Fp32Products::kMklOnIntel &&
         narrow_products::apply(in_channels);
}

// g = the output's gradient where the clamp passed it (0 < y < 6, the mask
// hardtanh_backward takes on the stored output), else 0, in fp32 from fp32
// or bf16 activations; adds g's column sums into `sums`.
template <class T>
MNV2_VECTOR_CLONES void clamped_gradient(const T* __restrict dy,
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

// out = rows + v for each of `rows` rows of `columns`, in fp32 or bf16 (out
// may be rows itself).
template <class T>
MNV2_VECTOR_CLONES void add_to_rows(const float* rows,
                                    const float* __restrict v,
                                    T* out,
                                    int64_t count,
                                    int64_t columns) {
  for (int64_t r = 0; r < count; ++r) {
    for (int64_t c = 0; c < columns; ++c) {
      cpu_loops::store(out, r * columns + c, rows[r * columns + c] + v[c]);
    }
  }
}

// A [rows, columns] matrix over `rows` pixels of a channels-last buffer.
torch::Tensor rows_of(const float* data, int64_t rows, int64_t columns) {
  return torch::from_blob(const_cast<float*>(data), {rows, columns});
}

// [N, C, H, W] channels_last as [N * H * W, C] (a view).
torch::Tensor as_rows(const torch::Tensor& t) {
  return t.permute({0, 2, 3, 1}).reshape({-1, t.size(1)});
}

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
    // Its own arithmetic is fp32 and fp64 on bf16 activations too.
    const c10::impl::ExcludeDispatchKeyGuard no_autocast(
        c10::DispatchKey::AutocastCPU);
    TORCH_CHECK(input.device().is_cpu() &&
                    (input.scalar_type() == torch::kFloat ||
                     input.scalar_type() == torch::kBFloat16) &&
                    input.dim() == 4 && conv_weight.dim() == 4 &&
                    conv_weight.size(1) == input.size(1) &&
                    conv_weight.size(2) == 1 && conv_weight.size(3) == 1,
                "expansion_conv_bn_relu6: a CPU fp32 or bf16 [N, C, H, W] "
                "input and "
                "a [out, C, 1, 1] weight, got ",
                input.sizes(),
                " and ",
                conv_weight.sizes());
    const int64_t in = input.size(1), out = conv_weight.size(0);
    // The loops below walk pixels of channels: channels last.
    const auto x = input.contiguous(torch::MemoryFormat::ChannelsLast);
    const auto u = as_rows(x);
    const int64_t pixels = u.size(0);
    TORCH_CHECK(pixels > 1,
                "expansion_conv_bn_relu6: BatchNorm in training needs more "
                "than one value per channel, got input of size ",
                input.sizes());
    // The input centred on its mean, in fp32, and its scatter matrix
    // sum(u u^T).
    const auto mean =
        u.sum(0, false, torch::kFloat) / static_cast<double>(pixels);
    auto centred = torch::empty_like(x, x.options().dtype(torch::kFloat));
    auto c = as_rows(centred);
    torch::sub_out(c, u, mean);
    const auto scatter =
        (uses_narrow_products(in) ? narrow_products::transposed_product(c, c)
                                  : torch::mm(c.t(), c))
            .to(torch::kDouble);
    // The convolution's output x = W u: its mean and biased variance.
    const auto w = conv_weight.detach().reshape({out, in}).to(torch::kDouble);
    const auto x_mean = w.mv(mean.to(torch::kDouble));
    const auto x_var = (w.mm(scatter) * w).sum(1) / static_cast<double>(pixels);
    const auto invstd = (x_var + eps).rsqrt();
    const auto scale = bn_weight.detach().to(torch::kDouble) * invstd;
    // BatchNorm folded in: y = clamp(scale W (u - mean) + bias, 0, 6), in
    // the input's dtype. bf16 takes the input itself, with the folded
    // weight's (rounded) product with the mean in an fp32 bias.
    const auto dtype = input.scalar_type();
    const auto folded = (scale.unsqueeze(1) * w)
                            .to(dtype)
                            .reshape({out, in, 1, 1})
                            .contiguous();
    auto output =
        (dtype == torch::kFloat
             ? convolution_relu6(
                   centred, folded, bn_bias.detach().to(torch::kFloat))
             : convolution_relu6(x,
                                 folded,
                                 (bn_bias.detach().to(torch::kDouble) -
                                  folded.reshape({out, in})
                                      .to(torch::kDouble)
                                      .mv(mean.to(torch::kDouble)))
                                     .to(torch::kFloat)))
            .contiguous(torch::MemoryFormat::ChannelsLast);
    {
      torch::NoGradGuard no_grad;
      const auto unbiased =
          x_var * (static_cast<double>(pixels) / (pixels - 1.0));
      update_running_stats(running_mean, x_mean.to(torch::kFloat), momentum);
      update_running_stats(running_var, unbiased.to(torch::kFloat), momentum);
    }
    ctx->save_for_backward({centred, conv_weight, output});
    ctx->saved_data["scatter"] = scatter;
    ctx->saved_data["invstd"] = invstd;
    ctx->saved_data["scale"] = scale;
    return output;
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    const c10::impl::ExcludeDispatchKeyGuard no_autocast(
        c10::DispatchKey::AutocastCPU);
    const auto saved = ctx->get_saved_variables();
    const auto& centred = saved[0];
    const auto& output = saved[2];
    const auto scatter = ctx->saved_data["scatter"].toTensor();
    const auto invstd = ctx->saved_data["invstd"].toTensor();
    const auto scale = ctx->saved_data["scale"].toTensor();
    const int64_t in = centred.size(1), out = output.size(1);
    const int64_t pixels = centred.numel() / in;
    const auto w = saved[1].reshape({out, in}).to(torch::kDouble);
    const auto grad = grads[0]
                          .to(output.scalar_type())
                          .contiguous(torch::MemoryFormat::ChannelsLast);
    const float* u = centred.const_data_ptr<float>();

    // The BatchNorm's input gradient is dx = scale g + slope (x - mean) +
    // offset per channel, and the input's du = dx W. Pass 1 computes sum(g),
    // G = sum(g u^T) and du = g (scale W), each block of g while it is in
    // cache; slope and offset need the sums, so their terms of du,
    // u (W^T slope W) + W^T offset, come in a second pass over u and du.
    const auto g_weight = (scale.unsqueeze(1) * w).to(torch::kFloat);
    auto grad_input = torch::empty_like(centred);
    float* du = grad_input.data_ptr<float>();
    const auto width = static_cast<size_t>(out * in + out);
    std::vector<double> partial(static_cast<size_t>(at::get_num_threads()) *
                                width);
    const bool narrow = uses_narrow_products(in);
    cpu_loops::with_elements(output, [&](const auto* y) {
      const auto* dy = cpu_loops::elements(grad, y);
      cpu_loops::parallel_rows(
          pixels, kExpansionBlockRows, [&](int64_t begin, int64_t end) {
            torch::NoGradGuard no_grad;  // worker threads start with grad mode
            double* own = partial.data() +
                          static_cast<size_t>(at::get_thread_num()) * width;
            auto g = torch::empty({kExpansionBlockRows, out});
            auto block_g_u = torch::empty({out, in});
            std::vector<float> sums(static_cast<size_t>(out));
            for (int64_t r = begin; r < end; r += kExpansionBlockRows) {
              const int64_t rows = std::min(kExpansionBlockRows, end - r);
              std::fill(sums.begin(), sums.end(), 0.f);
              clamped_gradient(dy + r * out,
                               y + r * out,
                               g.data_ptr<float>(),
                               rows,
                               out,
                               sums.data());
              if (narrow) {
                block_g_u.zero_();
                narrow_products::add_transposed_product(
                    g.const_data_ptr<float>(),
                    u + r * in,
                    block_g_u.data_ptr<float>(),
                    rows,
                    out,
                    in);
                narrow_products::rows_times_matrix(
                    g.const_data_ptr<float>(),
                    g_weight.const_data_ptr<float>(),
                    du + r * in,
                    rows,
                    out,
                    in);
              } else {
                const auto block = g.narrow(0, 0, rows);
                torch::mm_out(
                    block_g_u, block.t(), rows_of(u + r * in, rows, in));
                auto block_du = rows_of(du + r * in, rows, in);
                torch::mm_out(block_du, block, g_weight);
              }
              const float* bg = block_g_u.const_data_ptr<float>();
              for (int64_t i = 0; i < out * in; ++i) {
                own[i] += bg[i];
              }
              for (int64_t i = 0; i < out; ++i) {
                own[out * in + i] += sums[static_cast<size_t>(i)];
              }
            }
          });
      return 0;
    });
    auto totals = torch::zeros({static_cast<int64_t>(width)}, torch::kDouble);
    for (size_t t = 0; t < partial.size(); t += width) {
      totals += torch::from_blob(
          partial.data() + t, {static_cast<int64_t>(width)}, torch::kDouble);
    }
    const auto g_u = totals.narrow(0, 0, out * in).view({out, in});
    const auto g_sum = totals.narrow(0, out * in, out);

    // d gamma = sum(g xhat), d beta = sum(g); the weight's gradient dx^T u
    // from G and the scatter matrix.
    const double n = static_cast<double>(pixels);
    const auto grad_gamma = invstd * (w * g_u).sum(1);
    const auto slope = -scale * invstd * grad_gamma / n;
    const auto offset = -scale * g_sum / n;
    const auto grad_weight =
        scale.unsqueeze(1) * g_u + slope.unsqueeze(1) * w.mm(scatter);
    const auto u_weight =
        w.t().mm(slope.unsqueeze(1) * w).to(torch::kFloat).contiguous();
    const auto constant = w.t().mv(offset).to(torch::kFloat);
    // Pass 2: du += u (W^T slope W) + W^T offset, a block of pixels at a
    // time, written in the input's dtype.
    auto typed_grad_input =
        output.scalar_type() == torch::kFloat
            ? grad_input
            : torch::empty_like(
                  grad_input, grad_input.options().dtype(output.scalar_type()));
    const float* uw = u_weight.const_data_ptr<float>();
    const float* add = constant.const_data_ptr<float>();
    cpu_loops::with_elements(typed_grad_input, [&](const auto* like) {
      auto* typed = cpu_loops::mutable_elements(typed_grad_input, like);
      cpu_loops::parallel_rows(
          pixels, kExpansionBlockRows, [&](int64_t begin, int64_t end) {
            torch::NoGradGuard no_grad;
            for (int64_t r = begin; r < end; r += kExpansionBlockRows) {
              const int64_t rows = std::min(kExpansionBlockRows, end - r);
              if (narrow) {
                narrow_products::rows_times_matrix(
                    u + r * in, uw, du + r * in, rows, in, in, true);
              } else {
                auto block = rows_of(du + r * in, rows, in);
                block.addmm_(rows_of(u + r * in, rows, in), u_weight);
              }
              add_to_rows(du + r * in, add, typed + r * in, rows, in);
            }
          });
      return 0;
    });
    return {typed_grad_input,
            grad_weight.to(torch::kFloat).reshape(saved[1].sizes()),
            grad_gamma.to(torch::kFloat),
            g_sum.to(torch::kFloat),
            torch::Tensor(),
            torch::Tensor(),
            torch::Tensor(),
            torch::Tensor()};
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
  // Under bf16 autocast an fp32 input is cast, and its gradient flows back
  // through the cast.
  const auto dtype = cpu_computation_dtype(input).value_or(input.scalar_type());
  return ExpansionConvBNReLU6::apply(
      input.scalar_type() == dtype ? input : input.to(dtype),
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
  // bf16: where its products are not much faster than fp32's (no AMX), as
  // the backward's products here are fp32.
  const bool bf16 = dtype == torch::kBFloat16 && cpu_has_native_bf16() &&
                    !cpu_has_amx_bf16() &&
                    narrow_products::apply(input.size(1));
  if (!fp32 && !bf16) {
    return false;
  }
  const int64_t pixels = input.numel() / std::max<int64_t>(input.size(1), 1);
  return pixels >= expansion_min_pixels(input.size(1)) &&
         out_channels >= kExpansionMinRatio * input.size(1);
}

int64_t expansion_min_pixels(int64_t in_channels) {
  return fp32_products() == Fp32Products::kMklOnIntel ||
                 uses_narrow_products(in_channels)
             ? kExpansionMinPixels
             : kExpansionMinPixelsSlowProducts;
}

}  // namespace mnv2
