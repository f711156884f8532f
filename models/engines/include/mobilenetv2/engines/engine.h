#pragma once

// One interface for every form that runs MobileNetV2 inference: the eager
// module, the fused engines, TorchScript files and int8 networks. A weights
// file is read into EngineWeights; each EngineKind says whether it runs
// those weights and builds its engine; mnv2::engine_registry() (classifier)
// lists the kinds of this build in preference order (this library's are
// in engines/library_engines.h, the oneDNN add-on's in
// engines/onednn/onednn_engines.h).

#include <mobilenetv2/nn/mobilenet_v2.h>
#include <mobilenetv2/quantization/residual_add.h>

#include <torch/script.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace mnv2 {

struct QuantizedNetwork;

/// The forms a weights file is read into: one of them is set.
struct EngineWeights {
  MobileNetV2 eager{nullptr};                         ///< fp32 weights
  std::shared_ptr<torch::jit::Module> script;         ///< a TorchScript file
  std::shared_ptr<const QuantizedNetwork> quantized;  ///< an int8 file
};

/// Which engines a caller allows for fp32 weights on the CPU (mnv2-eval's
/// --engine): the fastest (oneDNN where built, else the graph engine), the
/// graph engine only, or the eager module only. int8 and TorchScript files
/// have one engine each, whatever the preference.
enum class EnginePreference { kFused, kGraph, kEager };

/// A built engine.
class InferenceEngine {
 public:
  virtual ~InferenceEngine() = default;
  /// "onednn", "onednn-int8", "graph", "int8-simulated", "torchscript" or
  /// "eager".
  virtual std::string name() const = 0;
  /// Whether it runs batches under this CPU autocast dtype (nullopt: none)
  /// itself; where it does not, an engine later in the registry does.
  virtual bool serves(const std::optional<c10::ScalarType>& autocast) const {
    (void)autocast;
    return true;
  }
  /// The arithmetic of its batches under that autocast: "fp32", "bf16",
  /// "fp16" or "int8".
  virtual std::string dtype(
      const std::optional<c10::ScalarType>& autocast) const {
    if (!autocast) {
      return "fp32";
    }
    return *autocast == torch::kBFloat16 ? "bf16" : "fp16";
  }
  /// The memory layout it computes in.
  virtual std::string layout() const = 0;
  /// The library that computes, with its version, where not LibTorch.
  virtual std::string library() const {
    return "";
  }
  /// Logits from a normalised [N, 3, H, W] batch.
  virtual torch::Tensor forward(const torch::Tensor& images) const = 0;
  /// An int8 engine's rounding of the residual add, for simulate_quantized()
  /// to give its codes on this CPU.
  virtual ResidualAdd residual_add() const {
    return ResidualAdd::kFusedMultiplyAdd;
  }
};

/// A kind of engine, as the registry lists it.
struct EngineKind {
  std::string name;
  /// Whether it runs these weights on `device` under `preference`.
  std::function<bool(
      const EngineWeights&, EnginePreference, const torch::Device& device)>
      accepts;
  std::function<std::shared_ptr<InferenceEngine>(const EngineWeights&)> build;
};

}  // namespace mnv2
