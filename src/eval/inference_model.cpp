#include "eval/inference_model.h"

#include "common/memory_format.h"
#include "common/runtime.h"
#include "eval/scripted_network.h"
#include "weights/weights_file.h"

#include <ATen/autocast_mode.h>

#include <caffe2/serialize/inline_container.h>
#include <torch/script.h>
#include <torch/torch.h>

namespace mnv2 {

namespace {
// TorchScript archives keep their code in a "code/" folder of records.
constexpr const char* kTorchScriptRecord = "constants.pkl";
constexpr const char* kMetadataExtraFile = "mnv2_metadata.json";
}  // namespace

bool is_torchscript_file(const std::string& path) {
  try {
    caffe2::serialize::PyTorchStreamReader reader(path);
    return reader.hasRecord(kTorchScriptRecord);
  } catch (const c10::Error&) {
    return false;
  }
}

InferenceModel InferenceModel::load(const std::string& path,
                                    bool prefer_ema,
                                    const torch::Device& device,
                                    bool allow_non_finite) {
  InferenceModel model;
  if (is_torchscript_file(path)) {
    torch::jit::ExtraFilesMap extra{{kMetadataExtraFile, ""}};
    try {
      model.script_ = std::make_shared<torch::jit::Module>(
          torch::jit::load(path, device, extra));
    } catch (const c10::Error& e) {
      throw WeightsError("TorchScript file '" + path + "' cannot be loaded: " +
                         e.msg().substr(0, e.msg().find('\n')));
    }
    model.script_->eval();
    model.kind_ = "torchscript";
    const auto& metadata = extra[kMetadataExtraFile];
    if (!metadata.empty()) {
      model.info_ = model_info_from_json(metadata, path);
      return model;
    }
    // A TorchScript classifier from elsewhere: the class count from a pass.
    torch::NoGradGuard no_grad;
    const auto classes =
        model.forward(torch::zeros({1, 3, 224, 224}, device)).size(1);
    model.info_ = model_info_from_json(
        "{\"num_classes\": " + std::to_string(classes) + "}", path);
    return model;
  }
  auto weights = load_any_weights_file(path, prefer_ema, allow_non_finite);
  if (!has_classifier(weights.state)) {
    throw WeightsError("'" + path +
                       "' holds MobileNetV2 features without a classifier: "
                       "use it as --pretrained to fine-tune a new head");
  }
  model.info_ = weights.info;
  model.conversion_ = weights.conversion;
  model.kind_ = weights.kind;
  model.eager_ = MobileNetV2(weights.info.options);
  load_weights(*model.eager_, weights.state, LoadMode::kStrict, path);
  model.eager_->to(device);
  model.eager_->eval();
  return model;
}

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

bool InferenceModel::runs_fused(
    const std::optional<c10::ScalarType>& autocast) const {
  return autocast ? *autocast == torch::kBFloat16 && fused_bf16_ != nullptr
                  : fused_ != nullptr;
}

torch::Tensor InferenceModel::forward(const torch::Tensor& images) const {
  const auto autocast = cpu_autocast_dtype();
  if (images.device().is_cpu() && runs_fused(autocast) &&
      unfused_shapes_.count(images.sizes().vec()) == 0) {
    try {
      // oneDNN's convolutions run in NHWC: an NCHW batch would be reordered
      // layer by layer (b32: 0.63x the throughput of NHWC input, measured).
      auto x = images.contiguous(torch::MemoryFormat::ChannelsLast);
      if (autocast) {
        NoCpuAutocast plain;
        return fused_bf16_->forward({x.to(torch::kBFloat16)})
            .toTensor()
            .to(torch::kFloat);
      }
      return fused_->forward({x}).toTensor();
    } catch (const std::exception&) {
      // oneDNN Graph rejects some small shapes (seen with 16-32 px inputs):
      // those run eagerly, with the same result.
      unfused_shapes_.insert(images.sizes().vec());
    }
  }
  if (script_) {
    return script_->forward({images}).toTensor();
  }
  return eager_->forward(images);
}

void InferenceModel::use_fused_engine() {
  if (!eager_ || fused_) {
    return;
  }
  auto folded = fold_batchnorm(eager_);
  fused_ = std::make_shared<torch::jit::Module>(fused_network(folded));
  if (cpu_has_native_bf16()) {
    // Emulated bf16 would be slower than fp32: only where it is native.
    for (auto& block : folded.blocks) {
      for (auto& conv : block.convs) {
        conv.weight = conv.weight.to(torch::kBFloat16);
        conv.bias = conv.bias.to(torch::kBFloat16);
      }
    }
    // The head stays fp32: its logits decide the probabilities.
    fused_bf16_ = std::make_shared<torch::jit::Module>(fused_network(folded));
  }
}

void InferenceModel::to_channels_last() {
  if (eager_) {
    use_channels_last(*eager_);
  }
}

}  // namespace mnv2
