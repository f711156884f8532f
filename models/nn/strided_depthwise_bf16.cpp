#include <mobilenetv2/nn/strided_depthwise_bf16.h>

#include "cpu_loops.h"

#include <ATen/autocast_mode.h>
#include <ATen/record_function.h>
#include <torch/autograd.h>
#include <torch/torch.h>

#include <vector>

namespace mnv2 {

namespace {

using cpu_loops::load;
using cpu_loops::store;

// Geometry of a depthwise convolution's input gradient, per image.
struct DepthwiseShape {
  int64_t in_h, in_w, out_h, out_w, channels, kernel, stride, padding;
};

// The output pixels whose windows cover an input row or column: for each
// input position, its taps (kernel offset, output position), worked out once
// so that the loops divide nothing.
struct Taps {
  std::vector<int64_t> count;        // per input position
  std::vector<int64_t> offset, out;  // kernel entries per position
};

Taps covering_taps(int64_t in, int64_t out, const DepthwiseShape& s) {
  Taps t;
  t.count.assign(static_cast<size_t>(in), 0);
  t.offset.assign(static_cast<size_t>(in * s.kernel), 0);
  t.out.assign(static_cast<size_t>(in * s.kernel), 0);
  for (int64_t i = 0; i < in; ++i) {
    for (int64_t k = 0; k < s.kernel; ++k) {
      const int64_t o = i + s.padding - k;
      if (o >= 0 && o % s.stride == 0 && o / s.stride < out) {
        const auto slot = static_cast<size_t>(i * s.kernel + t.count[i]++);
        t.offset[slot] = k;
        t.out[slot] = o / s.stride;
      }
    }
  }
  return t;
}

// One input row's gradient, channels last: each input pixel gathers the
// output pixels whose windows cover it (with stride 2, one to four of the
// nine taps), in fp32; `weights` is the kernel as [kernel * kernel][channels].
template <class T>
MNV2_VECTOR_CLONES void depthwise_input_gradient_row(
    const T* __restrict grad,  // one image: [out_h, out_w, channels]
    const float* __restrict weights,
    T* __restrict dx,       // one input row: [in_w, channels]
    float* __restrict sum,  // [channels] scratch
    int64_t row,
    const Taps& rows,
    const Taps& cols,
    const DepthwiseShape& s) {
  const int64_t channels = s.channels;
  for (int64_t col = 0; col < s.in_w; ++col) {
    for (int64_t c = 0; c < channels; ++c) {
      sum[c] = 0.f;
    }
    for (int64_t i = 0; i < rows.count[row]; ++i) {
      const auto ri = static_cast<size_t>(row * s.kernel + i);
      for (int64_t j = 0; j < cols.count[col]; ++j) {
        const auto cj = static_cast<size_t>(col * s.kernel + j);
        const T* __restrict g =
            grad + (rows.out[ri] * s.out_w + cols.out[cj]) * channels;
        const float* __restrict w =
            weights + (rows.offset[ri] * s.kernel + cols.offset[cj]) * channels;
        for (int64_t c = 0; c < channels; ++c) {
          sum[c] += load(g, c) * w[c];
        }
      }
    }
    for (int64_t c = 0; c < channels; ++c) {
      store(dx, col * channels + c, sum[c]);
    }
  }
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
  const DepthwiseShape s{input.size(2),
                         input.size(3),
                         grad.size(2),
                         grad.size(3),
                         input.size(1),
                         weight.size(2),
                         stride,
                         padding};
  // [channels, 1, k, k] -> [k * k, channels], fp32.
  const auto weights = weight.to(torch::kFloat)
                           .reshape({s.channels, s.kernel * s.kernel})
                           .t()
                           .contiguous();
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
          std::vector<float> sum(static_cast<size_t>(s.channels));
          for (int64_t r = begin; r < end; ++r) {
            const int64_t n = r / s.in_h;
            depthwise_input_gradient_row(
                in + n * s.out_h * s.out_w * s.channels,
                weights.const_data_ptr<float>(),
                out + r * s.in_w * s.channels,
                sum.data(),
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
    return torch::conv2d(input, weight, {}, stride, padding, 1, input.size(1));
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
      if (input.is_contiguous(torch::MemoryFormat::ChannelsLast)) {
        grad_input =
            depthwise_input_gradient(grad, weight, input, stride, padding);
      } else {
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
  return StridedDepthwiseBf16::apply(
      input.to(torch::kBFloat16), weight.to(torch::kBFloat16), stride, padding);
}

bool strided_depthwise_bf16_applies(const torch::Tensor& input,
                                    int64_t groups,
                                    int64_t stride) {
  const bool bf16 = input.scalar_type() == torch::kBFloat16 ||
                    (at::autocast::is_autocast_enabled(c10::DeviceType::CPU) &&
                     at::autocast::get_autocast_dtype(c10::DeviceType::CPU) ==
                         torch::kBFloat16 &&
                     input.scalar_type() == torch::kFloat);
  return input.device().is_cpu() && input.dim() == 4 && stride > 1 &&
         groups > 1 && groups == input.size(1) && bf16 &&
         torch::GradMode::is_enabled();
}

}  // namespace mnv2
