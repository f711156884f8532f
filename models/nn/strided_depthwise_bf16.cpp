#include <mobilenetv2/nn/strided_depthwise_bf16.h>

#include <ATen/autocast_mode.h>
#include <ATen/record_function.h>
#include <torch/autograd.h>
#include <torch/torch.h>

#include <vector>

namespace mnv2 {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

class StridedDepthwiseBf16
    : public torch::autograd::Function<StridedDepthwiseBf16> {
 public:
  static torch::Tensor forward(AutogradContext* ctx,
                               const torch::Tensor& input,
                               const torch::Tensor& weight,
                               int64_t stride,
                               int64_t padding) {
    RECORD_FUNCTION("mnv2::strided_depthwise_bf16", std::vector<c10::IValue>());
    // The operands are bf16 already: autocast has nothing to cast.
    ctx->save_for_backward({input, weight});
    ctx->saved_data["stride"] = stride;
    ctx->saved_data["padding"] = padding;
    return torch::conv2d(
        input, weight, {}, stride, padding, 1, input.size(1));
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto& input = saved[0];
    const auto& weight = saved[1];
    const auto stride = ctx->saved_data["stride"].toInt();
    const auto padding = ctx->saved_data["padding"].toInt();
    const auto groups = input.size(1);
    const auto& grad = grads[0];
    torch::Tensor grad_input;
    if (ctx->needs_input_grad(0)) {
      // The transposed convolution of the gradient, in fp32; the rows and
      // columns the strided windows skipped at the end come back as
      // output padding.
      const auto kernel = weight.size(2);
      const auto extra = [&](int dim) {
        return input.size(dim) + 2 * padding - kernel -
               (grad.size(dim) - 1) * stride;
      };
      grad_input = torch::conv_transpose2d(grad.to(torch::kFloat),
                                           weight.to(torch::kFloat),
                                           {},
                                           stride,
                                           padding,
                                           {extra(2), extra(3)},
                                           groups)
                       .to(input.scalar_type());
    }
    torch::Tensor grad_weight;
    if (ctx->needs_input_grad(1)) {
      grad_weight = std::get<1>(at::convolution_backward(grad,
                                                         input,
                                                         weight,
                                                         std::nullopt,
                                                         {stride, stride},
                                                         {padding, padding},
                                                         {1, 1},
                                                         false,
                                                         {0, 0},
                                                         groups,
                                                         {false, true, false}));
    }
    return {grad_input, grad_weight, torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor strided_depthwise_bf16(const torch::Tensor& input,
                                     const torch::Tensor& weight,
                                     int64_t stride,
                                     int64_t padding) {
  return StridedDepthwiseBf16::apply(input.to(torch::kBFloat16),
                                     weight.to(torch::kBFloat16),
                                     stride,
                                     padding);
}

bool strided_depthwise_bf16_applies(const torch::Tensor& input,
                                    int64_t groups,
                                    int64_t stride) {
  const bool bf16 =
      input.scalar_type() == torch::kBFloat16 ||
      (at::autocast::is_autocast_enabled(c10::DeviceType::CPU) &&
       at::autocast::get_autocast_dtype(c10::DeviceType::CPU) ==
           torch::kBFloat16 &&
       input.scalar_type() == torch::kFloat);
  return input.device().is_cpu() && input.dim() == 4 && stride > 1 &&
         groups > 1 && groups == input.size(1) && bf16 &&
         torch::GradMode::is_enabled();
}

}  // namespace mnv2
