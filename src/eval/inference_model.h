#pragma once

#include "common/checkpoint.h"

#include <torch/types.h>

#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace mnv2 {

/// Any weights mnv2-eval and mnv2-export accept, ready for inference: one of
/// our training checkpoints (raw or EMA weights), a torchvision-compatible
/// state_dict (torchvision's published files work; `<stem>.json` beside it
/// adds class names and sizes), or a TorchScript file from mnv2-export.
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
  /// "checkpoint", "checkpoint-ema", "state_dict", "keras-h5", ... or
  /// "torchscript".
  const std::string& kind() const {
    return kind_;
  }
  /// The eager model (null for TorchScript files).
  const MobileNetV2& eager() const {
    return eager_;
  }
  void to_channels_last();

  /// Runs fp32 CPU inference through the fused network (BatchNorm folded,
  /// frozen TorchScript with oneDNN Graph fusion: about 2x the eager
  /// model's speed, see README). On a CPU with native bf16 (AVX-512 BF16,
  /// AMX), CPU autocast to bf16 runs a bf16 copy of it (about 1.8x the fp32
  /// fused engine); other autocast and CUDA keep the eager model.
  /// No effect on TorchScript files.
  void use_fused_engine();
  bool fused() const {
    return fused_ != nullptr;
  }
  /// Whether CPU batches under this autocast dtype (nullopt: none) run
  /// through a fused network.
  bool runs_fused(const std::optional<c10::ScalarType>& autocast) const;

 private:
  ModelInfo info_;
  std::string kind_;
  std::string conversion_;
  mutable MobileNetV2 eager_{nullptr};  // forward() is logically const
  std::shared_ptr<torch::jit::Module> script_;
  std::shared_ptr<torch::jit::Module> fused_;
  std::shared_ptr<torch::jit::Module> fused_bf16_;  // native bf16 CPUs only
  mutable std::set<std::vector<int64_t>> unfused_shapes_;  // see forward()
};

/// Whether a file is a TorchScript archive (as opposed to a torch.save one).
bool is_torchscript_file(const std::string& path);

}  // namespace mnv2
