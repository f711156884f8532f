#include <mobilenetv2/util/memory_format.h>

#include <torch/torch.h>

namespace mnv2 {

void use_channels_last(torch::nn::Module& module) {
  torch::NoGradGuard no_grad;
  for (auto& p : module.parameters()) {
    if (p.dim() == 4) {
      // Not .contiguous(ChannelsLast): a 1x1 kernel counts as channels_last
      // already and would keep NCHW strides, unlike the gradients autograd
      // makes for it (DDP's Reducer then copies through mismatched views).
      auto converted =
          torch::empty_like(p.data(), torch::MemoryFormat::ChannelsLast);
      converted.copy_(p.data());
      p.set_data(converted);
    }
  }
}

}  // namespace mnv2
