#include <mobilenetv2/engines/onednn/onednn_engines.h>

#include <mobilenetv2/engines/onednn/onednn_mobilenet_v2.h>

namespace mnv2 {

namespace {

class OneDnnEngine : public InferenceEngine {
 public:
  OneDnnEngine(std::string name, OneDnnMobileNetV2 network)
      : name_(std::move(name)), network_(std::move(network)) {}
  std::string name() const override {
    return name_;
  }
  bool serves(const std::optional<c10::ScalarType>& autocast) const override {
    // int8 ignores autocast; fp32 leaves autocast to the graph engine.
    return int8() || !autocast;
  }
  std::string dtype(const std::optional<c10::ScalarType>&) const override {
    return int8() ? "int8" : "fp32";
  }
  std::string layout() const override {
    return int8() ? "nhwc" : "oneDNN's choice";
  }
  std::string library() const override {
    return "oneDNN " + onednn_version();
  }
  torch::Tensor forward(const torch::Tensor& images) const override {
    return network_.forward(int8() ? images.to(torch::kFloat) : images);
  }
  ResidualAdd residual_add() const override {
    return OneDnnMobileNetV2::int8_residual_add();
  }

 private:
  bool int8() const {
    return name_ == "onednn-int8";
  }
  std::string name_;
  OneDnnMobileNetV2 network_;
};

}  // namespace

std::vector<EngineKind> onednn_engine_kinds() {
  return {
      {"onednn-int8",
       [](const EngineWeights& w, EnginePreference, const torch::Device& d) {
         return w.quantized != nullptr && d.is_cpu();
       },
       [](const EngineWeights& w) {
         return std::make_shared<OneDnnEngine>("onednn-int8",
                                               OneDnnMobileNetV2(*w.quantized));
       }},
      {"onednn",
       [](const EngineWeights& w, EnginePreference p, const torch::Device& d) {
         return w.eager && d.is_cpu() && p == EnginePreference::kFused;
       },
       [](const EngineWeights& w) {
         return std::make_shared<OneDnnEngine>("onednn",
                                               OneDnnMobileNetV2(w.eager));
       }},
  };
}

}  // namespace mnv2
