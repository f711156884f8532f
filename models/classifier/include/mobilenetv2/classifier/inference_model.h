#pragma once

#include <mobilenetv2/weights/checkpoint.h>

#include <mobilenetv2/engines/engine.h>

#include <torch/types.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace mnv2 {

struct QuantizedNetwork;

/// Any weights mnv2-eval and mnv2-export accept, ready for inference: one of
/// our training checkpoints (raw or EMA weights), a torchvision-compatible
/// state_dict (torchvision's published files work; `<stem>.json` beside it
/// adds class names and sizes), a TorchScript file from mnv2-export, or an
/// int8 file from `mnv2-export --format int8` (CPU only: the int8 oneDNN
/// engine where the add-on is built, else its LibTorch simulation).
class InferenceModel {
 public:
  /// Throws WeightsError naming the file.
  static InferenceModel load(const std::string& path,
                             bool prefer_ema,
                             const torch::Device& device,
                             bool allow_non_finite = false);

  /// Logits from a normalised batch.
  torch::Tensor forward(const torch::Tensor& images) const;

  const ModelInfo& info() const {
    return info_;
  }
  /// What was converted when reading a file from elsewhere, or "".
  const std::string& conversion() const {
    return conversion_;
  }
  /// What was assumed when reading the file (no `<stem>.json` beside it),
  /// for the caller to show.
  const std::vector<std::string>& warnings() const {
    return warnings_;
  }
  /// "checkpoint", "checkpoint-ema", "state_dict", "keras-h5", ...,
  /// "torchscript" or "int8".
  const std::string& kind() const {
    return kind_;
  }
  /// The eager model (null for TorchScript and int8 files).
  const MobileNetV2& eager() const {
    return weights_.eager;
  }
  /// The module of a TorchScript file, else null.
  const torch::jit::Module* script() const {
    return weights_.script.get();
  }
  /// The quantized network of an int8 file, else null.
  const QuantizedNetwork* quantized() const {
    return weights_.quantized.get();
  }
  /// The activation ranges of a quantization-aware training checkpoint
  /// (mnv2-train --qat), else null.
  const QatState* qat() const {
    return qat_ ? &*qat_ : nullptr;
  }
  void to_channels_last();

  /// Runs CPU inference through a fused engine: fp32 through
  /// mnv2::OneDnnMobileNetV2 (oneDNN primitives called directly) where this
  /// build has the oneDNN add-on and `graph_only` is false, otherwise through
  /// mnv2::FusedMobileNetV2 (frozen TorchScript with oneDNN Graph fusion),
  /// which also runs CPU autocast to bf16 where the CPU has native bf16.
  /// Other autocast and CUDA keep the eager model. No effect on TorchScript
  /// and int8 files, nor after the first call.
  void use_fused_engine(bool graph_only = false);
  bool fused() const;
  /// The engine that runs CPU batches under this autocast dtype (nullopt:
  /// none), chosen by mnv2::select_engine: "onednn", "graph" or "eager";
  /// for int8 files "onednn-int8" or "int8-simulated", whatever the
  /// autocast; "torchscript" for TorchScript files.
  const InferenceEngine& engine(
      const std::optional<c10::ScalarType>& autocast) const;
  /// engine(autocast).name().
  std::string engine_for(const std::optional<c10::ScalarType>& autocast) const;
  /// Whether CPU batches under this autocast dtype (nullopt: none) run
  /// through a fused network ("onednn" or "graph").
  bool runs_fused(const std::optional<c10::ScalarType>& autocast) const;

 private:
  ModelInfo info_;
  std::string kind_;
  std::string conversion_;
  std::vector<std::string> warnings_;
  EngineWeights weights_;
  torch::Device device_ = torch::kCPU;
  std::vector<std::shared_ptr<const InferenceEngine>> engines_;
  bool fused_requested_ = false;
  std::optional<QatState> qat_;
};

/// Whether a file is a TorchScript archive (as opposed to a torch.save one).
bool is_torchscript_file(const std::string& path);

}  // namespace mnv2
