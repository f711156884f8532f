#include <mobilenetv2/nn/pointwise_conv.h>

#include "training_dtype.h"

#include <mobilenetv2/util/cpu_features.h>

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
                              int64_t groups,
                              int64_t kernel,
                              int64_t stride) {
  if (!input.device().is_cpu() || input.dim() != 4 || groups != 1 ||
      kernel != 1 || stride != 1 || !torch::GradMode::is_enabled() ||
      !input.is_contiguous(torch::MemoryFormat::ChannelsLast)) {
    return false;
  }
  const auto dtype = cpu_computation_dtype(input);
  const int64_t pixels = input.size(0) * input.size(2) * input.size(3);
  return dtype && pixels > 0 &&
         pixels <= (*dtype == torch::kBFloat16 ? kPointwiseMaxPixelsBf16
                                               : pointwise_max_pixels_fp32());
}

int64_t pointwise_max_pixels_fp32() {
  // bf16 products are oneDNN's on any CPU; fp32 ones are MKL's where
  // LibTorch has it, fast on Intel CPUs only.
  static const bool fast_fp32_products =
      at::globalContext().hasMKL() && cpu_is_intel();
  return fast_fp32_products ? kPointwiseMaxPixels : 0;
}

}  // namespace mnv2
