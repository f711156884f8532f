#pragma once

#include "common/errors.h"
#include "train/train_config.h"

namespace mnv2 {

/// Trains as `config` says: one epoch after another with evaluation,
/// metrics, TensorBoard scalars, an atomic checkpoint per epoch and the best
/// weights, resumable. Returns kDone, or kInterrupted/kTerminated after
/// SIGINT/SIGTERM (checkpoint saved). Throws ConfigError for bad settings
/// (before anything is written), DataError, WeightsError or TrainingError.
/// With `config.write_shards`, packs the data instead (pack_into_shards).
Outcome run_training(TrainConfig config);

/// Packs `config.data` (an ImageFolder or list file) into WebDataset shards
/// at `config.write_shards` and logs what it wrote.
Outcome pack_into_shards(const TrainConfig& config);

}  // namespace mnv2
