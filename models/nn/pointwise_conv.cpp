#include <mobilenetv2/nn/pointwise_conv.h>

#include "matrix_products.h"
#include "training_dtype.h"

#include <torch/torch.h>

namespace mnv2 {

torch::Tensor pointwise_conv2d(const torch::Tensor& input,
                               const torch::Tensor& weight) {
  const auto dtype = cpu_computation_dtype(input).value_or(input.scalar_type());
  const auto x = input.to(dtype);
  const int64_t images = x.size(0), channels = x.size(1);
  const int64_t height = x.size(2), width = x.size(3);
  const int64_t out_channels = weight.size(0);
  // Channels last, [N, C, H, W] is [N, H, W, C] in memory: the permute and
  // reshape are views, and so are the ones back.
  const auto pixels = x.permute({0, 2, 3, 1}).reshape({-1, channels});
  const auto rows =
      torch::mm(pixels, weight.to(dtype).reshape({out_channels, channels}).t());
  return rows.view({images, height, width, out_channels}).permute({0, 3, 1, 2});
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
  const auto limits = *dtype == torch::kBFloat16 ? kPointwiseLimitsBf16
                                                 : pointwise_limits_fp32();
  // Checked in this order, pixels is at most 2^16 in the product, and a
  // weight of in x out channels that fits in memory keeps it in range.
  return pixels > 0 && pixels <= limits.max_pixels &&
         pixels * input.size(1) * out_channels <= limits.max_multiply_adds;
}

PointwiseLimits pointwise_limits_fp32() {
  switch (fp32_products()) {
    case Fp32Products::kMklOnIntel:
      return kPointwiseLimitsFp32;
    case Fp32Products::kMklElsewhere:
      return kPointwiseLimitsFp32NotIntel;
    case Fp32Products::kNoMkl:
      break;
  }
  return {0, 0};
}

}  // namespace mnv2
