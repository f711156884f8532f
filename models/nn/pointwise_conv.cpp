#include <mobilenetv2/nn/pointwise_conv.h>

#include "gradient_layout.h"
#include "matrix_products.h"
#include "narrow_products.h"
#include "training_dtype.h"

#include <torch/torch.h>

#include <algorithm>

namespace mnv2 {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

// [N, C, H, W] channels last is [N, H, W, C] in memory: its pixels are the
// rows of an [N H W, C] matrix, a view (a copy only for a gradient in
// another layout).
torch::Tensor pixel_rows(const torch::Tensor& nchw) {
  return nchw.permute({0, 2, 3, 1}).reshape({-1, nchw.size(1)});
}

// The [N H W, channels] rows back as a channels-last [N, C, H, W] view.
torch::Tensor from_pixel_rows(const torch::Tensor& rows,
                              const torch::Tensor& like) {
  return rows.view({like.size(0), like.size(2), like.size(3), rows.size(1)})
      .permute({0, 3, 1, 2});
}

// a b and a^T b: ours where pointwise_own_products_fp32 takes the layer,
// else LibTorch's.
struct Products {
  bool own;
  Products(const torch::Tensor& input, const torch::Tensor& weight)
      : own(input.scalar_type() == torch::kFloat &&
            pointwise_own_products_fp32(weight.size(1), weight.size(0))) {}
  torch::Tensor times(const torch::Tensor& a, const torch::Tensor& b) const {
    return own ? narrow_products::product(a, b) : torch::mm(a, b);
  }
  torch::Tensor transposed_times(const torch::Tensor& a,
                                 const torch::Tensor& b) const {
    return own ? narrow_products::transposed_product(a, b)
               : torch::mm(a.t(), b);
  }
};

// One autograd node for the three products instead of the seven that the
// views around torch::mm record: recording and dispatching is serial work
// on the main thread while the other threads wait (about a sixth of its
// time in the 48x48 step).
class PointwiseProduct : public torch::autograd::Function<PointwiseProduct> {
 public:
  static torch::Tensor forward(AutogradContext* ctx,
                               const torch::Tensor& input,
                               const torch::Tensor& weight) {
    ctx->save_for_backward({input, weight});
    const auto matrix = weight.reshape({weight.size(0), weight.size(1)});
    return from_pixel_rows(
        Products(input, weight).times(pixel_rows(input), matrix.t()), input);
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto& input = saved[0];
    const auto& weight = saved[1];
    const auto matrix = weight.reshape({weight.size(0), weight.size(1)});
    const auto grad_rows = pixel_rows(grads[0].to(input.scalar_type()));
    torch::Tensor grad_input, grad_weight;
    const Products products(input, weight);
    if (ctx->needs_input_grad(0)) {
      grad_input = from_pixel_rows(products.times(grad_rows, matrix), input);
    }
    if (ctx->needs_input_grad(1)) {
      grad_weight =
          in_strides_of(products.transposed_times(grad_rows, pixel_rows(input))
                            .view(weight.sizes()),
                        weight);
    }
    return {grad_input, grad_weight};
  }
};

}  // namespace

torch::Tensor pointwise_conv2d(const torch::Tensor& input,
                               const torch::Tensor& weight) {
  const ComputationCast cast(input);
  return PointwiseProduct::apply(cast(input), cast(weight));
}

bool pointwise_conv2d_applies(const torch::Tensor& input,
                              int64_t out_channels,
                              int64_t groups,
                              int64_t kernel,
                              int64_t stride) {
  if (!input.device().is_cpu() || input.dim() != 4 || groups != 1 ||
      kernel != 1 || stride != 1 || !torch::GradMode::is_enabled() ||
      !input.is_contiguous(torch::MemoryFormat::ChannelsLast)) {
    return false;
  }
  const auto dtype = cpu_computation_dtype(input);
  if (!dtype) {
    return false;
  }
  const int64_t pixels = input.size(0) * input.size(2) * input.size(3);
  if (*dtype == torch::kFloat &&
      pointwise_own_products_fp32(input.size(1), out_channels)) {
    return pixels > 0;
  }
  const auto limits = *dtype == torch::kBFloat16 ? kPointwiseLimitsBf16
                                                 : pointwise_limits_fp32();
  // Checked in this order, pixels is at most 2^16 in the product, and a
  // weight of in x out channels that fits in memory keeps it in range.
  return pixels > 0 && pixels <= limits.max_pixels &&
         pixels * input.size(1) * out_channels <= limits.max_multiply_adds;
}

bool pointwise_own_products_fp32(int64_t in_channels, int64_t out_channels) {
  return own_narrow_products() && narrow_products::apply(in_channels) &&
         narrow_products::apply(out_channels) &&
         std::min(in_channels, out_channels) <= kPointwiseOwnMaxNarrowSide;
}

PointwiseLimits pointwise_limits_fp32() {
  switch (fp32_products()) {
    case Fp32Products::kMklOnIntel:
    case Fp32Products::kMklOnIntelOwnNarrow:
      return kPointwiseLimitsFp32;
    case Fp32Products::kMklElsewhere:
      return kPointwiseLimitsFp32NotIntel;
    case Fp32Products::kNoMkl:
      break;
  }
  return {0, 0};
}

}  // namespace mnv2
