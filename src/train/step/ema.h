#pragma once

#include <mobilenetv2/nn/mobilenet_v2.h>

#include <cstdint>
#include <utility>
#include <vector>

namespace mnv2 {

/// Exponential moving average of a model's parameters and buffers, as
/// torchvision's reference `ExponentialMovingAverage` with `--model-ema`:
/// updated every `update_every` steps with a decay adjusted for the batch
/// size and epoch count, and reset to the model during warmup.
class ModelEma {
 public:
  /// `decay` and `update_every` as torchvision's --model-ema-decay and
  /// --model-ema-steps; `images_per_step` and `epochs` give its adjustment.
  ModelEma(const MobileNetV2& model,
           double decay,
           int64_t update_every,
           int64_t images_per_step,
           int64_t epochs);

  /// Called after every optimiser step of the model given at construction;
  /// `in_warmup` copies the model instead of averaging.
  void after_step(int64_t global_step, bool in_warmup);

  MobileNetV2& model() {
    return ema_;
  }
  double effective_decay() const {
    return decay_;
  }

 private:
  MobileNetV2 ema_{nullptr};
  /// (average, model) tensor pairs, matched by name once.
  std::vector<std::pair<torch::Tensor, torch::Tensor>> pairs_;
  double decay_;
  int64_t update_every_;
};

}  // namespace mnv2
