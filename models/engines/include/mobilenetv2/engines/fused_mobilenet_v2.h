#pragma once

#include <mobilenetv2/nn/mobilenet_v2.h>
#include <mobilenetv2/util/cpu_features.h>

#include <torch/script.h>

#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <vector>

namespace mnv2 {

/// A trained MobileNetV2 made fast for CPU inference: BatchNorm folded into
/// the convolutions, then a frozen TorchScript graph in which oneDNN Graph
/// fuses each convolution with its bias, ReLU6 and residual add (about 2x
/// the eager model on CPU; docs/benchmarks.md gives measured figures). Its
/// logits equal the eager model's in eval mode to about 1e-6 relative.
///
/// Building one turns on oneDNN Graph fusion for TorchScript in this
/// process, as Python's `torch.jit.enable_onednn_fusion(True)` does.
/// forward() may be called from several threads; fused calls run one at a
/// time (each uses all intra-op threads).
class FusedMobileNetV2 {
 public:
  /// `model` must be on the CPU and in eval mode. `with_bf16` also builds a
  /// bf16 copy for batches under CPU autocast to bf16; by default only where
  /// the CPU has native bf16 (elsewhere it would be slower than fp32).
  explicit FusedMobileNetV2(const MobileNetV2& model,
                            bool with_bf16 = cpu_has_native_bf16());

  /// Logits ([N, classes], fp32) of a CPU batch of normalised images, in
  /// either memory format. Under CPU autocast to bf16 the bf16 copy runs
  /// (pooling and classifier in fp32); under other autocast, or for an input
  /// shape oneDNN Graph rejects (seen with 16-32 px inputs), the eager model
  /// answers. The first two calls with a new input shape compile it.
  torch::Tensor forward(const torch::Tensor& images) const;

  /// Whether a batch under this CPU autocast dtype (nullopt: none) runs
  /// through a fused network.
  bool runs_fused(const std::optional<c10::ScalarType>& autocast) const;

 private:
  mutable MobileNetV2 eager_;  // forward() is logically const
  std::shared_ptr<torch::jit::Module> fp32_;
  std::shared_ptr<torch::jit::Module> bf16_;  // null unless built
  mutable std::mutex mutex_;  // guards the fused calls and the set below
  mutable std::set<std::vector<int64_t>> unfused_shapes_;  // see forward()
};

}  // namespace mnv2
