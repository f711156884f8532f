#include <mobilenetv2/engines/library_engines.h>

#include <mobilenetv2/engines/fused_mobilenet_v2.h>
#include <mobilenetv2/quantization/quantized_network.h>

namespace mnv2 {

namespace {

bool on_cpu(const torch::Device& device) {
  return device.is_cpu();
}

class EagerEngine : public InferenceEngine {
 public:
  explicit EagerEngine(MobileNetV2 model) : model_(std::move(model)) {}
  std::string name() const override {
    return "eager";
  }
  std::string layout() const override {
    // The convolutions' layout, which the model's forward keeps.
    for (const auto& weight : model_->parameters()) {
      if (weight.dim() == 4) {
        return weight.is_contiguous() ? "nchw" : "channels_last";
      }
    }
    return "nchw";
  }
  torch::Tensor forward(const torch::Tensor& images) const override {
    return model_->forward(images);
  }

 private:
  mutable MobileNetV2 model_;  // forward() is logically const
};

class GraphEngine : public InferenceEngine {
 public:
  explicit GraphEngine(const MobileNetV2& model) : fused_(model) {}
  std::string name() const override {
    return "graph";
  }
  bool serves(const std::optional<c10::ScalarType>& autocast) const override {
    return fused_.runs_fused(autocast);
  }
  std::string layout() const override {
    return "oneDNN Graph's choice";
  }
  torch::Tensor forward(const torch::Tensor& images) const override {
    return fused_.forward(images);
  }

 private:
  FusedMobileNetV2 fused_;
};

class TorchScriptEngine : public InferenceEngine {
 public:
  explicit TorchScriptEngine(std::shared_ptr<torch::jit::Module> script)
      : script_(std::move(script)) {}
  std::string name() const override {
    return "torchscript";
  }
  std::string layout() const override {
    return "the script's";
  }
  torch::Tensor forward(const torch::Tensor& images) const override {
    return script_->forward({images}).toTensor();
  }

 private:
  std::shared_ptr<torch::jit::Module> script_;
};

class SimulatedInt8Engine : public InferenceEngine {
 public:
  explicit SimulatedInt8Engine(std::shared_ptr<const QuantizedNetwork> net)
      : net_(std::move(net)) {}
  std::string name() const override {
    return "int8-simulated";
  }
  std::string dtype(const std::optional<c10::ScalarType>&) const override {
    return "int8";
  }
  std::string layout() const override {
    return "nchw";
  }
  torch::Tensor forward(const torch::Tensor& images) const override {
    return simulate_quantized(*net_, images);
  }

 private:
  std::shared_ptr<const QuantizedNetwork> net_;
};

}  // namespace

std::vector<EngineKind> library_engine_kinds() {
  return {
      {"int8-simulated",
       [](const EngineWeights& w, EnginePreference, const torch::Device& d) {
         return w.quantized != nullptr && on_cpu(d);
       },
       [](const EngineWeights& w) {
         return std::make_shared<SimulatedInt8Engine>(w.quantized);
       }},
      {"graph",
       [](const EngineWeights& w, EnginePreference p, const torch::Device& d) {
         return w.eager && on_cpu(d) && p != EnginePreference::kEager;
       },
       [](const EngineWeights& w) {
         return std::make_shared<GraphEngine>(w.eager);
       }},
      {"torchscript",
       [](const EngineWeights& w, EnginePreference, const torch::Device&) {
         return w.script != nullptr;
       },
       [](const EngineWeights& w) {
         return std::make_shared<TorchScriptEngine>(w.script);
       }},
      {"eager",
       [](const EngineWeights& w, EnginePreference, const torch::Device&) {
         return static_cast<bool>(w.eager);
       },
       [](const EngineWeights& w) {
         return std::make_shared<EagerEngine>(w.eager);
       }},
  };
}

}  // namespace mnv2
