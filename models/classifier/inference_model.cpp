#include <mobilenetv2/inference_model.h>
#include <mobilenetv2/memory_format.h>

#include <mobilenetv2/quantized_network.h>
#include <mobilenetv2/weights_file.h>

#ifdef MNV2_WITH_ONEDNN
#include <mobilenetv2/onednn_mobilenet_v2.h>
#endif

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
      const auto named = class_names_in_json(metadata);
      const auto classes = model.info_.options.num_classes();
      if (named != 0 && named != classes) {
        model.warnings_.push_back(
            "its metadata names " + std::to_string(named) +
            " classes but the model has " + std::to_string(classes) +
            ": the names are not used and the classes are numbered 0-" +
            std::to_string(classes - 1));
      }
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
  model.warnings_ = weights.warnings;
  if (weights.kind == "int8") {
    if (!device.is_cpu()) {
      throw WeightsError("'" + path +
                         "' holds int8 weights, which run on the CPU only");
    }
    model.info_ = weights.info;
    model.kind_ = weights.kind;
    model.quantized_ = std::make_shared<const QuantizedNetwork>(
        quantized_from_state_dict(weights.state, path));
#ifdef MNV2_WITH_ONEDNN
    model.onednn_ = std::make_shared<OneDnnMobileNetV2>(*model.quantized_);
#endif
    return model;
  }
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

std::string InferenceModel::engine_for(
    const std::optional<c10::ScalarType>& autocast) const {
  if (quantized_) {
    return onednn_ ? "onednn-int8" : "int8-simulated";
  }
  if (onednn_ && !autocast) {
    return "onednn";
  }
  return runs_fused(autocast) ? "graph" : "eager";
}

bool InferenceModel::runs_fused(
    const std::optional<c10::ScalarType>& autocast) const {
  return fused_ != nullptr && fused_->runs_fused(autocast);
}

torch::Tensor InferenceModel::forward(const torch::Tensor& images) const {
  if (quantized_) {
#ifdef MNV2_WITH_ONEDNN
    return onednn_->forward(images.to(torch::kFloat));
#else
    return simulate_quantized(*quantized_, images);
#endif
  }
  if (fused_ && images.device().is_cpu()) {
#ifdef MNV2_WITH_ONEDNN
    if (onednn_ && !at::autocast::is_autocast_enabled(c10::DeviceType::CPU)) {
      return onednn_->forward(images);
    }
#endif
    return fused_->forward(images);
  }
  if (script_) {
    return script_->forward({images}).toTensor();
  }
  return eager_->forward(images);
}

void InferenceModel::use_fused_engine(bool graph_only) {
  // The fused engines are for CPU models; CUDA keeps the eager model.
  if (eager_ && !fused_ && eager_->parameters().front().device().is_cpu()) {
    fused_ = std::make_shared<FusedMobileNetV2>(eager_);
#ifdef MNV2_WITH_ONEDNN
    if (!graph_only) {
      onednn_ = std::make_shared<OneDnnMobileNetV2>(eager_);
    }
#else
    (void)graph_only;
#endif
  }
}

void InferenceModel::to_channels_last() {
  if (eager_) {
    // As training converts its model, so that evaluation here computes what
    // training's evaluation computed.
    use_channels_last(*eager_);
  }
}

}  // namespace mnv2
