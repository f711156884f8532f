#include <mobilenetv2/util/counting.h>

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
      const auto output_size = [&](int64_t size, size_t d) {
        const auto kernel = (*o.kernel_size())[d];
        const auto stride = (*o.stride())[d];
        if ((*padding)[d] == 0 && kernel > 1) {
          // Unpadded k > 1: a TF "SAME" unit pads its input itself.
          return (size + stride - 1) / stride;
        }
        return (size + 2 * (*padding)[d] - kernel) / stride + 1;
      };
      height = output_size(height, 0);
      width = output_size(width, 1);
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
