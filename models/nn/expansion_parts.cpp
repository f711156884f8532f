// The expansion's moment trick in parts (expansion_parts.h): its forward
// and its backward's finishing pass (the block sums:
// expansion_block_sums.cpp), and what the forward keeps for the backward.
#include "expansion_parts.h"

#include <mobilenetv2/util/cpu_features.h>

#include "gradient_layout.h"
#include "matrix_products.h"
#include "narrow_products.h"
#include "running_stats.h"

#include <ATen/Parallel.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/torch.h>

#include <algorithm>
#include <optional>
#include <vector>

namespace mnv2::expansion_parts {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

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

}  // namespace

// Whether the backward's products (and the forward's scatter matrix) are
// ours (own_narrow_products); ours take in_channels a multiple of 8.
bool uses_narrow_products(int64_t in_channels) {
  return own_narrow_products() && narrow_products::apply(in_channels);
}

torch::Tensor as_rows(const torch::Tensor& t) {
  return t.permute({0, 2, 3, 1}).reshape({-1, t.size(1)});
}

Forward forward(const torch::Tensor& input,
                const torch::Tensor& conv_weight,
                const torch::Tensor& bn_weight,
                const torch::Tensor& bn_bias,
                torch::Tensor& running_mean,
                torch::Tensor& running_var,
                double momentum,
                double eps) {
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
  auto centred = torch::empty_like(x, x.options().dtype(torch::kFloat));
  auto c = as_rows(centred);
  torch::Tensor mean;
  if (u.scalar_type() == torch::kFloat) {
    mean = u.sum(0) / static_cast<double>(pixels);
    torch::sub_out(c, u, mean);
  } else {  // bf16 widened once, where sum() and sub() would each copy it
    c.copy_(u);
    mean = c.sum(0) / static_cast<double>(pixels);
    c.sub_(mean);
  }
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
  const auto folded =
      (scale.unsqueeze(1) * w).to(dtype).reshape({out, in, 1, 1}).contiguous();
  auto output = (dtype == torch::kFloat
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
  return {output, centred, scatter, invstd, scale};
}

void save(AutogradContext* ctx,
          const Forward& f,
          const torch::Tensor& conv_weight,
          const std::vector<torch::Tensor>& more) {
  std::vector<torch::Tensor> tensors{f.centred, conv_weight, f.output};
  tensors.insert(tensors.end(), more.begin(), more.end());
  ctx->save_for_backward(tensors);
  ctx->saved_data["scatter"] = f.scatter;
  ctx->saved_data["invstd"] = f.invstd;
  ctx->saved_data["scale"] = f.scale;
}

Saved restore(AutogradContext* ctx) {
  auto tensors = ctx->get_saved_variables();
  return {{tensors[2],
           tensors[0],
           ctx->saved_data["scatter"].toTensor(),
           ctx->saved_data["invstd"].toTensor(),
           ctx->saved_data["scale"].toTensor()},
          tensors[1],
          {tensors.begin() + 3, tensors.end()}};
}

tensor_list finish(const Forward& saved,
                   const torch::Tensor& conv_weight,
                   const torch::Tensor& totals,
                   torch::Tensor& du,
                   torch::ScalarType dtype) {
  const int64_t in = saved.centred.size(1), out = saved.output.size(1);
  const int64_t pixels = saved.centred.numel() / in;
  const auto w = conv_weight.reshape({out, in}).to(torch::kDouble);
  const auto g_u = totals.narrow(0, 0, out * in).view({out, in});
  const auto g_sum = totals.narrow(0, out * in, out);
  const auto& invstd = saved.invstd;
  const auto& scale = saved.scale;

  // d gamma = sum(g xhat), d beta = sum(g); the weight's gradient dx^T u
  // from G and the scatter matrix.
  const double n = static_cast<double>(pixels);
  const auto grad_gamma = invstd * (w * g_u).sum(1);
  const auto slope = -scale * invstd * grad_gamma / n;
  const auto offset = -scale * g_sum / n;
  const auto grad_weight =
      scale.unsqueeze(1) * g_u + slope.unsqueeze(1) * w.mm(saved.scatter);
  const auto u_weight =
      w.t().mm(slope.unsqueeze(1) * w).to(torch::kFloat).contiguous();
  const auto constant = w.t().mv(offset).to(torch::kFloat);
  // Pass 2: du += u (W^T slope W) + W^T offset, a block of pixels at a
  // time, written in the input's dtype.
  auto typed_du = dtype == torch::kFloat
                      ? du
                      : torch::empty_like(du, du.options().dtype(dtype));
  const float* u = saved.centred.const_data_ptr<float>();
  float* dup = du.data_ptr<float>();
  const bool narrow = uses_narrow_products(in);
  const float* uw = u_weight.const_data_ptr<float>();
  const float* add = constant.const_data_ptr<float>();
  cpu_loops::with_elements(typed_du, [&](const auto* like) {
    auto* typed = cpu_loops::mutable_elements(typed_du, like);
    cpu_loops::parallel_rows(
        pixels, kBlockRows, [&](int64_t begin, int64_t end) {
          torch::NoGradGuard no_grad;
          for (int64_t r = begin; r < end; r += kBlockRows) {
            const int64_t rows = std::min(kBlockRows, end - r);
            if (narrow) {
              narrow_products::rows_times_matrix(
                  u + r * in, uw, dup + r * in, rows, in, in, true);
            } else {
              auto block = rows_of(dup + r * in, rows, in);
              block.addmm_(rows_of(u + r * in, rows, in), u_weight);
            }
            add_to_rows(dup + r * in, add, typed + r * in, rows, in);
          }
        });
    return 0;
  });
  return {
      typed_du,
      in_strides_of(grad_weight.to(torch::kFloat).reshape(conv_weight.sizes()),
                    conv_weight),
      grad_gamma.to(torch::kFloat),
      g_sum.to(torch::kFloat)};
}

}  // namespace mnv2::expansion_parts
