#include <mobilenetv2/classifier/inference_model.h>
#include <mobilenetv2/util/memory_format.h>

#include <mobilenetv2/classifier/engine_registry.h>
#include <mobilenetv2/classifier/weights_file.h>
#include <mobilenetv2/quantization/quantized_network.h>
#include <mobilenetv2/torch_files/load_weights.h>

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
      model.weights_.script = std::make_shared<torch::jit::Module>(
          torch::jit::load(path, device, extra));
    } catch (const c10::Error& e) {
      throw WeightsError("TorchScript file '" + path + "' cannot be loaded: " +
                         e.msg().substr(0, e.msg().find('\n')));
    }
    model.weights_.script->eval();
    model.kind_ = "torchscript";
    model.device_ = device;
    model.engines_ =
        build_engines(model.weights_, EnginePreference::kEager, device);
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
    model.weights_.quantized = std::make_shared<const QuantizedNetwork>(
        quantized_from_state_dict(weights.state, path));
    model.engines_ =
        build_engines(model.weights_, EnginePreference::kEager, device);
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
  model.qat_ = weights.qat;
  auto& eager = model.weights_.eager;
  eager = MobileNetV2(weights.info.options);
  load_weights(*eager, weights.state, LoadMode::kStrict, path);
  eager->to(device);
  eager->eval();
  model.device_ = device;
  model.engines_ =
      build_engines(model.weights_, EnginePreference::kEager, device);
  return model;
}

const InferenceEngine& InferenceModel::engine(
    const std::optional<c10::ScalarType>& autocast) const {
  return select_engine(engines_, autocast);
}

std::string InferenceModel::engine_for(
    const std::optional<c10::ScalarType>& autocast) const {
  return engine(autocast).name();
}

bool InferenceModel::runs_fused(
    const std::optional<c10::ScalarType>& autocast) const {
  const auto name = engine_for(autocast);
  return name == "onednn" || name == "graph";
}

bool InferenceModel::fused() const {
  return fused_requested_;
}

torch::Tensor InferenceModel::forward(const torch::Tensor& images) const {
  std::optional<c10::ScalarType> autocast;
  if (images.device().is_cpu() &&
      at::autocast::is_autocast_enabled(c10::DeviceType::CPU)) {
    autocast = at::autocast::get_autocast_dtype(c10::DeviceType::CPU);
  }
  return engine(autocast).forward(images);
}

void InferenceModel::use_fused_engine(bool graph_only) {
  // The fused engines are for CPU models; CUDA keeps the eager model.
  if (weights_.eager && !fused_requested_ && device_.is_cpu()) {
    fused_requested_ = true;
    engines_ = build_engines(
        weights_,
        graph_only ? EnginePreference::kGraph : EnginePreference::kFused,
        device_);
  }
}

void InferenceModel::to_channels_last() {
  if (weights_.eager) {
    // As training converts its model, so that evaluation here computes what
    // training's evaluation computed.
    use_channels_last(*weights_.eager);
  }
}

}  // namespace mnv2
