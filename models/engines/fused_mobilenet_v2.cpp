#include <mobilenetv2/engines/fused_mobilenet_v2.h>

#include <mobilenetv2/engines/scripted_network.h>
#include <mobilenetv2/nn/folded_network.h>

#include <ATen/autocast_mode.h>

namespace mnv2 {

namespace {

// CPU autocast off for a call whose network already has its dtype (the JIT
// would otherwise specialise the frozen graph for autocast).
class NoCpuAutocast {
 public:
  NoCpuAutocast()
      : enabled_(at::autocast::is_autocast_enabled(c10::DeviceType::CPU)) {
    at::autocast::set_autocast_enabled(c10::DeviceType::CPU, false);
  }
  ~NoCpuAutocast() {
    at::autocast::set_autocast_enabled(c10::DeviceType::CPU, enabled_);
  }
  NoCpuAutocast(const NoCpuAutocast&) = delete;
  NoCpuAutocast& operator=(const NoCpuAutocast&) = delete;

 private:
  bool enabled_;
};

std::optional<c10::ScalarType> cpu_autocast_dtype() {
  if (!at::autocast::is_autocast_enabled(c10::DeviceType::CPU)) {
    return std::nullopt;
  }
  return at::autocast::get_autocast_dtype(c10::DeviceType::CPU);
}

}  // namespace

FusedMobileNetV2::FusedMobileNetV2(const MobileNetV2& model, bool with_bf16)
    : eager_(model) {
  TORCH_CHECK(model->parameters().front().device().is_cpu(),
              "FusedMobileNetV2: the model must be on the CPU");
  TORCH_CHECK(!model->is_training(),
              "FusedMobileNetV2: the model must be in eval mode (eval())");
  auto folded = fold_batchnorm(model);
  fp32_ = std::make_shared<torch::jit::Module>(fused_network(folded));
  if (with_bf16) {
    for (auto& block : folded.blocks) {
      for (auto& conv : block.convs) {
        conv.weight = conv.weight.to(torch::kBFloat16);
        conv.bias = conv.bias.to(torch::kBFloat16);
      }
    }
    // The head stays fp32: its logits decide the probabilities.
    bf16_ = std::make_shared<torch::jit::Module>(fused_network(folded));
  }
}

bool FusedMobileNetV2::runs_fused(
    const std::optional<c10::ScalarType>& autocast) const {
  return autocast ? *autocast == torch::kBFloat16 && bf16_ != nullptr : true;
}

torch::Tensor FusedMobileNetV2::forward(const torch::Tensor& images) const {
  TORCH_CHECK(images.device().is_cpu(),
              "FusedMobileNetV2: the images must be on the CPU");
  const auto autocast = cpu_autocast_dtype();
  if (runs_fused(autocast)) {
    // One call at a time: LibTorch's fused graphs are not safe to run
    // concurrently (two threads with different batch sizes got each other's
    // output sizes, seen in tests); each call uses every intra-op thread.
    std::lock_guard<std::mutex> lock(mutex_);
    const auto shape = images.sizes().vec();
    if (unfused_shapes_.count(shape) == 0) {
      try {
        // oneDNN's convolutions run in NHWC: an NCHW batch would be
        // reordered layer by layer (b32: 0.63x the throughput of NHWC input,
        // measured).
        auto x = images.contiguous(torch::MemoryFormat::ChannelsLast);
        if (autocast) {
          NoCpuAutocast plain;
          return bf16_->forward({x.to(torch::kBFloat16)})
              .toTensor()
              .to(torch::kFloat);
        }
        return fp32_->forward({x}).toTensor();
      } catch (const std::exception&) {
        // oneDNN Graph rejects some small shapes (seen with 16-32 px
        // inputs): those run eagerly, with the same result.
        unfused_shapes_.insert(shape);
      }
    }
  }
  return eager_->forward(images);
}

}  // namespace mnv2
