#include <mobilenetv2/counting.h>

#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>

namespace mnv2 {

int64_t count_parameters(const torch::nn::Module& module) {
  int64_t total = 0;
  for (const auto& p : module.parameters()) {
    total += p.numel();
  }
  return total;
}

int64_t count_multiply_adds(const torch::nn::Module& module,
                            int64_t height,
                            int64_t width) {
  TORCH_CHECK(height > 0 && width > 0,
              "count_multiply_adds: the input size must be positive");
  int64_t total = 0;
  for (const auto& child : module.modules(/*include_self=*/true)) {
    if (const auto* conv = child->as<torch::nn::Conv2d>()) {
      const auto& o = conv->options;
      const auto& padding = std::get<torch::ExpandingArray<2>>(o.padding());
      height = (height + 2 * (*padding)[0] - (*o.kernel_size())[0]) /
                   (*o.stride())[0] +
               1;
      width = (width + 2 * (*padding)[1] - (*o.kernel_size())[1]) /
                  (*o.stride())[1] +
              1;
      total += height * width * o.out_channels() *
               (o.in_channels() / o.groups()) * (*o.kernel_size())[0] *
               (*o.kernel_size())[1];
    } else if (const auto* linear = child->as<torch::nn::Linear>()) {
      total += linear->options.in_features() * linear->options.out_features();
    }
  }
  return total;
}

}  // namespace mnv2
