#include "data/network_input.h"

#include <torch/torch.h>

#include <vector>

namespace mnv2 {

torch::Tensor normalize_images(const torch::Tensor& images,
                               const torch::Device& device,
                               bool channels_last,
                               const Normalization& n) {
  const auto format = channels_last ? torch::MemoryFormat::ChannelsLast
                                    : torch::MemoryFormat::Contiguous;
  auto x = images.to(device, /*non_blocking=*/true);
  if (!x.is_floating_point()) {
    auto options = torch::TensorOptions().dtype(torch::kFloat).device(device);
    const auto mean =
        torch::tensor(std::vector<float>(n.mean.begin(), n.mean.end()), options)
            .view({1, 3, 1, 1}) *
        255;
    const auto std =
        torch::tensor(std::vector<float>(n.stddev.begin(), n.stddev.end()),
                      options)
            .view({1, 3, 1, 1}) *
        255;
    x = (x.to(torch::kFloat) - mean) / std;
  }
  return x.contiguous(format);
}

}  // namespace mnv2
