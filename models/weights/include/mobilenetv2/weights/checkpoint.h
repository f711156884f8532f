#pragma once

#include <mobilenetv2/quantization/qat.h>
#include <mobilenetv2/weights/model_info.h>

#include <mobilenetv2/nn/options.h>
#include <mobilenetv2/torch_files/state_dict.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace mnv2 {

/// Where training stands, besides the tensors.
struct TrainingProgress {
  int64_t epoch = 0;           ///< epochs completed
  int64_t batch_in_epoch = 0;  ///< batches done of an interrupted epoch
  int64_t global_step = 0;     ///< optimiser steps so far
  double best_top1 = -1;       ///< best val top-1 so far, percent
  int64_t world_size = 1;      ///< processes of the run that wrote it
  /// Training losses summed over the batches done of an interrupted epoch
  /// (per rank), so that its mean covers the whole epoch after a resume.
  double epoch_loss_sum = 0;
};

/// A full training checkpoint, as written to checkpoint.pth: a dict that
/// Python's torch.load(weights_only=True) reads, with the model's state_dict
/// under "model" (so any state_dict reader accepts the file as weights).
struct Checkpoint {
  StateDict model;
  std::optional<StateDict> model_ema;
  StateDict optimizer;
  torch::Tensor scaler_scale;
  torch::Tensor scaler_growth_tracker;
  torch::Tensor rng_state;       ///< LibTorch's default CPU generator
  torch::Tensor cuda_rng_state;  ///< the training GPU's generator (if any)
  TrainingProgress progress;
  ModelInfo info;
  std::string config_json;
  /// Quantization-aware training's activation ranges and input step
  /// (mnv2-train --qat), else none.
  std::optional<QatState> qat;
};

/// Writes atomically: a kill at any moment leaves the previous file intact.
void write_checkpoint(const Checkpoint& checkpoint, const std::string& path);
/// Throws WeightsError naming the file when it is not our checkpoint.
Checkpoint read_checkpoint(const std::string& path);
/// Whether `path` holds one of our training checkpoints (vs. plain weights).
bool is_checkpoint(const c10::IValue& value);

/// Weights plus what is known about them, from a checkpoint (raw or EMA
/// weights), or a torchvision-style state_dict with an optional
/// `<stem>.json` metadata file beside it.
struct LoadedWeights {
  StateDict state;
  ModelInfo info;
  /// "checkpoint", "checkpoint-ema", "state_dict", "community-state_dict"
  /// or "keras-h5".
  std::string kind;
  /// What was converted on reading (a layout mapping), for the log; or "".
  std::string conversion;
  /// What was assumed on reading, for a warning (no `<stem>.json`: ImageNet's
  /// preprocessing and numbered classes).
  std::vector<std::string> warnings;
  /// A quantization-aware training checkpoint's ranges, else none.
  std::optional<QatState> qat;
};
/// Throws WeightsError naming the first tensor that holds NaN or inf values.
void refuse_non_finite(const StateDict& state, const std::string& path);

/// Our checkpoints and torchvision-style state_dicts (see
/// weights/weights_file.h for every format). Throws WeightsError naming the
/// first tensor that holds NaN or inf values unless `allow_non_finite` (for
/// debugging a diverged run).
LoadedWeights load_weights_file(const std::string& path,
                                bool prefer_ema,
                                bool allow_non_finite = false);

}  // namespace mnv2
