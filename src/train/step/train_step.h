#pragma once

// One training step on a batch already on the device and normalised: what
// the trainer runs for every batch, free of datasets and image codecs (the
// GPU check in tests/gpu drives it with synthetic tensors).

#include "distributed/data_parallel.h"
#include "train/step/ema.h"
#include "train/step/grad_scaler.h"
#include "train/step/optimizer.h"

#include <mobilenetv2/nn/mobilenet_v2.h>

#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <optional>

namespace mnv2 {

/// What a step reads and updates, owned by the caller.
struct TrainStepParts {
  MobileNetV2 model{nullptr};
  Optimizer* optimizer = nullptr;
  GradScaler* scaler = nullptr;
  ModelEma* ema = nullptr;                ///< none without --model-ema
  DataParallel* data_parallel = nullptr;  ///< none in one process
  /// The forward pass, where not the model's own (quantization-aware
  /// training's fake-quantized one).
  std::function<torch::Tensor(const torch::Tensor&)> forward{};
};

struct TrainStepSettings {
  torch::Device device = torch::kCPU;
  std::optional<c10::ScalarType> amp_dtype;  ///< autocast dtype, if any
  int64_t num_classes = 1000;
  double label_smoothing = 0;
  double mixup_alpha = 0;
  double cutmix_alpha = 0;
  double clip_grad_norm = 0;  ///< 0: no clipping
  uint64_t seed = 0;          ///< with the step number, seeds mixup's draws
  int64_t accumulate_steps = 1;
};

/// Where a micro-batch falls: gradients add up over `accumulate_steps`
/// micro-batches and the optimiser steps on the last one.
struct MicroBatch {
  int64_t index = 0;        ///< 0 .. accumulate_steps - 1 (0 zeroes grads)
  bool last = true;         ///< the optimiser steps after this one
  int64_t global_step = 0;  ///< optimiser steps taken so far
  double lr = 0;            ///< the step's learning rate
  bool in_warmup = false;   ///< the EMA copies the model instead
};

/// Forward under autocast, loss (cross-entropy, or soft cross-entropy on
/// mixed batches), scaled backward; on the last micro-batch the ranks have
/// averaged the gradients, which are unscaled, clipped and applied (skipped
/// on the device when the scaler found inf/NaN), then the scale and the EMA
/// are updated. Returns the micro-batch's loss, detached.
torch::Tensor train_micro_batch(TrainStepParts& parts,
                                const TrainStepSettings& settings,
                                const torch::Tensor& images,
                                const torch::Tensor& labels,
                                const MicroBatch& where);

}  // namespace mnv2
