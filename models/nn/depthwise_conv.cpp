#include <mobilenetv2/nn/depthwise_conv.h>

#include "cpu_loops.h"
#include "depthwise_loops.h"
#include "training_dtype.h"

#include <ATen/record_function.h>
#include <torch/autograd.h>
#include <torch/torch.h>

#include <vector>

namespace mnv2 {

namespace {

using depthwise_loops::add_image_weight_gradient;
using depthwise_loops::covering_taps;
using depthwise_loops::depthwise_input_gradient_row;
using depthwise_loops::DepthwiseShape;
using depthwise_loops::kernel_as_taps;
using depthwise_loops::taps_as_kernel;

DepthwiseShape shape_of(const torch::Tensor& input,
                        const torch::Tensor& grad_output,
                        const torch::Tensor& weight,
                        int64_t stride,
                        int64_t padding) {
  return {input.size(2),
          input.size(3),
          grad_output.size(2),
          grad_output.size(3),
          input.size(1),
          weight.size(2),
          stride,
          padding};
}

// The input gradient of a depthwise convolution, channels last, computed
// directly in one pass that writes it once: LibTorch has no fast bf16 one
// for strides above 1, and its fp32 one reads and writes more.
torch::Tensor depthwise_input_gradient(const torch::Tensor& grad_output,
                                       const torch::Tensor& weight,
                                       const torch::Tensor& input,
                                       int64_t stride,
                                       int64_t padding) {
  const auto grad = grad_output.to(input.scalar_type())
                        .contiguous(torch::MemoryFormat::ChannelsLast);
  const DepthwiseShape s = shape_of(input, grad, weight, stride, padding);
  const auto weights = kernel_as_taps(weight);
  auto dx = torch::empty(
      input.sizes(),
      input.options().memory_format(torch::MemoryFormat::ChannelsLast));
  const int64_t images = input.size(0);
  const auto rows = covering_taps(s.in_h, s.out_h, s);
  const auto cols = covering_taps(s.in_w, s.out_w, s);
  cpu_loops::with_elements(grad, [&](const auto* in) {
    auto* out = cpu_loops::mutable_elements(dx, in);
    cpu_loops::parallel_rows(
        images * s.in_h, 1, [&](int64_t begin, int64_t end) {
          for (int64_t r = begin; r < end; ++r) {
            const int64_t n = r / s.in_h;
            depthwise_input_gradient_row(
                in + n * s.out_h * s.out_w * s.channels,
                weights.const_data_ptr<float>(),
                out + r * s.in_w * s.channels,
                r % s.in_h,
                rows,
                cols,
                s);
          }
        });
    return 0;
  });
  return dx;
}

// The input gradient as the transposed convolution of the gradient, in
// fp32, for a layout the channels-last kernel does not take; the rows and
// columns the strided windows skipped at the end come back as output
// padding.
torch::Tensor transposed_input_gradient(const torch::Tensor& grad_output,
                                        const torch::Tensor& weight,
                                        const torch::Tensor& input,
                                        int64_t stride,
                                        int64_t padding) {
  const auto kernel = weight.size(2);
  const auto extra = [&](int dim) {
    return input.size(dim) + 2 * padding - kernel -
           (grad_output.size(dim) - 1) * stride;
  };
  return torch::conv_transpose2d(grad_output.to(torch::kFloat),
                                 weight.to(torch::kFloat),
                                 {},
                                 stride,
                                 padding,
                                 {extra(2), extra(3)},
                                 input.size(1))
      .to(input.scalar_type());
}

// The input gradient of a stride-1 depthwise convolution: the convolution
// of the output's gradient with the kernel turned by 180 degrees, padded
// by kernel - 1 - padding (oneDNN's forward, faster in bf16 than its
// backward).
torch::Tensor flipped_input_gradient(const torch::Tensor& grad_output,
                                     const torch::Tensor& weight,
                                     int64_t padding) {
  const int64_t kernel = weight.size(2);
  return torch::conv2d(grad_output.to(weight.scalar_type()),
                       weight.flip({2, 3}),
                       {},
                       1,
                       kernel - 1 - padding,
                       1,
                       weight.size(0));
}

// The weight gradient of a depthwise convolution, in the weight's dtype:
// each thread sums its images, the threads' sums are added at the end.
torch::Tensor depthwise_weight_gradient(const torch::Tensor& grad_output,
                                        const torch::Tensor& input,
                                        const torch::Tensor& weight,
                                        int64_t stride,
                                        int64_t padding) {
  const auto x = input.contiguous(torch::MemoryFormat::ChannelsLast);
  const auto grad = grad_output.to(input.scalar_type())
                        .contiguous(torch::MemoryFormat::ChannelsLast);
  const DepthwiseShape s = shape_of(x, grad, weight, stride, padding);
  const int64_t taps = s.kernel * s.kernel * s.channels;
  auto partial = torch::zeros({at::get_num_threads(), taps});
  float* sums = partial.data_ptr<float>();
  cpu_loops::with_elements(x, [&](const auto* in) {
    const auto* g = cpu_loops::elements(grad, in);
    cpu_loops::parallel_rows(x.size(0), 1, [&](int64_t begin, int64_t end) {
      float* own = sums + at::get_thread_num() * taps;
      for (int64_t n = begin; n < end; ++n) {
        const auto* image_grad = g + n * s.out_h * s.out_w * s.channels;
        const auto* image = in + n * s.in_h * s.in_w * s.channels;
        add_image_weight_gradient(image_grad, image, own, s);
      }
    });
    return 0;
  });
  return taps_as_kernel(partial, weight);
}

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

// LibTorch 2.13's oneDNN: a depthwise weight gradient over outputs at most 2
// pixels high or wide takes a slow path, in fp32 and more so in bf16.
bool small_output(int64_t out_h, int64_t out_w) {
  return out_h <= 2 || out_w <= 2;
}

class DepthwiseConv : public torch::autograd::Function<DepthwiseConv> {
 public:
  static torch::Tensor forward(AutogradContext* ctx,
                               const torch::Tensor& input,
                               const torch::Tensor& weight,
                               int64_t stride,
                               int64_t padding) {
    RECORD_FUNCTION("mnv2::depthwise_conv2d", std::vector<c10::IValue>());
    // The operands have the computation's dtype: autocast casts nothing.
    ctx->save_for_backward({input, weight});
    ctx->saved_data["stride"] = stride;
    ctx->saved_data["padding"] = padding;
    return torch::conv2d(input, weight, {}, stride, padding, 1, input.size(1));
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto& input = saved[0];
    const auto& weight = saved[1];
    const auto stride = ctx->saved_data["stride"].toInt();
    const auto padding = ctx->saved_data["padding"].toInt();
    const auto& grad = grads[0];
    const bool small = small_output(grad.size(2), grad.size(3));
    const bool bf16 = input.scalar_type() == torch::kBFloat16;
    const bool strided_bf16 = bf16 && stride > 1;
    const auto libtorch = [&](bool input_grad, bool weight_grad) {
      return at::convolution_backward(grad,
                                      input,
                                      weight,
                                      std::nullopt,
                                      {stride, stride},
                                      {padding, padding},
                                      {1, 1},
                                      false,
                                      {0, 0},
                                      input.size(1),
                                      {input_grad, weight_grad, false});
    };
    torch::Tensor grad_input;
    if (ctx->needs_input_grad(0)) {
      if (small || (strided_bf16 &&
                    input.is_contiguous(torch::MemoryFormat::ChannelsLast))) {
        grad_input =
            depthwise_input_gradient(grad, weight, input, stride, padding);
      } else if (strided_bf16) {
        grad_input =
            transposed_input_gradient(grad, weight, input, stride, padding);
      } else if (bf16 && stride == 1 && padding < weight.size(2)) {
        grad_input = flipped_input_gradient(grad, weight, padding);
      } else {
        grad_input = std::get<0>(libtorch(true, false));
      }
    }
    torch::Tensor grad_weight;
    if (ctx->needs_input_grad(1)) {
      grad_weight =
          depthwise_weight_gradient(grad, input, weight, stride, padding);
    }
    return {grad_input, grad_weight, torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor depthwise_conv2d(const torch::Tensor& input,
                               const torch::Tensor& weight,
                               int64_t stride,
                               int64_t padding) {
  const ComputationCast cast(input);
  return DepthwiseConv::apply(cast(input), cast(weight), stride, padding);
}

bool depthwise_conv2d_applies(const torch::Tensor& input,
                              int64_t groups,
                              int64_t kernel,
                              int64_t stride,
                              int64_t padding) {
  if (!input.device().is_cpu() || input.dim() != 4 || groups < 2 ||
      groups != input.size(1) || !torch::GradMode::is_enabled()) {
    return false;
  }
  const auto dtype = cpu_computation_dtype(input);
  const auto out = [&](int dim) {
    return (input.size(dim) + 2 * padding - kernel) / stride + 1;
  };
  return dtype && (*dtype == torch::kBFloat16 || small_output(out(2), out(3)) ||
                   input.is_contiguous(torch::MemoryFormat::ChannelsLast));
}

}  // namespace mnv2
