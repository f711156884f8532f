#include <mobilenetv2/engines/onednn/onednn_mobilenet_v2.h>

#include <mobilenetv2/engines/plain_network.h>
#include <mobilenetv2/nn/folded_network.h>
#include <mobilenetv2/quantization/quantized_network.h>

#include "onednn_network.h"

#include <ATen/Parallel.h>

namespace mnv2 {

OneDnnMobileNetV2::OneDnnMobileNetV2(const MobileNetV2& model) {
  TORCH_CHECK(model->parameters().front().device().is_cpu(),
              "OneDnnMobileNetV2: the model must be on the CPU");
  TORCH_CHECK(!model->is_training(),
              "OneDnnMobileNetV2: the model must be in eval mode (eval())");
  const auto folded = fold_batchnorm(model);
  auto network = to_plain_network(folded);
  in_channels_ = network.blocks.front().convs.front().weight_shape[1];
  network_ = std::make_unique<OneDnnNetwork>(std::move(network));
}

OneDnnMobileNetV2::OneDnnMobileNetV2(const QuantizedNetwork& network) {
  auto plain = to_plain_network(network);
  in_channels_ = plain.blocks.front().convs.front().weight_shape[1];
  network_ = std::make_unique<OneDnnNetwork>(std::move(plain));
}

OneDnnMobileNetV2::~OneDnnMobileNetV2() = default;
OneDnnMobileNetV2::OneDnnMobileNetV2(OneDnnMobileNetV2&&) noexcept = default;
OneDnnMobileNetV2& OneDnnMobileNetV2::operator=(OneDnnMobileNetV2&&) noexcept =
    default;

ResidualAdd OneDnnMobileNetV2::int8_residual_add() {
  return onednn_int8_sum_fused() ? ResidualAdd::kFusedMultiplyAdd
                                 : ResidualAdd::kMultiplyThenAdd;
}

torch::Tensor OneDnnMobileNetV2::forward(const torch::Tensor& images) const {
  TORCH_CHECK(images.device().is_cpu() && images.scalar_type() == torch::kFloat,
              "OneDnnMobileNetV2: the images must be fp32 on the CPU");
  TORCH_CHECK(images.dim() == 4 && images.size(1) == in_channels_,
              "OneDnnMobileNetV2: the images must be [N, ",
              in_channels_,
              ", H, W], got ",
              images.sizes());
  TORCH_CHECK(images.size(2) > 0 && images.size(3) > 0,
              "OneDnnMobileNetV2: empty images ",
              images.sizes());
  if (images.size(0) == 0) {
    return torch::empty({0, network_->outputs()});
  }
  const bool channels_last =
      !images.is_contiguous() &&
      images.is_contiguous(torch::MemoryFormat::ChannelsLast);
  const auto x = channels_last ? images : images.contiguous();
  // oneDNN runs on the calling thread's OpenMP thread count: make it
  // LibTorch's intra-op setting, as ATen's own parallel regions do.
  at::init_num_threads();
  // Dropout is identity at inference.
  auto logits = torch::empty({x.size(0), network_->outputs()});
  network_->forward(x.data_ptr<float>(),
                    {x.size(0), x.size(1), x.size(2), x.size(3)},
                    channels_last,
                    logits.data_ptr<float>());
  return logits;
}

std::string onednn_version() {
  return onednn_library_version();
}

}  // namespace mnv2
