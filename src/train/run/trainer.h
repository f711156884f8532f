#pragma once

#include "common/errors.h"
#include "train/config/train_config.h"

namespace mnv2 {

/// Trains as `config` says: one epoch after another with evaluation,
/// metrics, TensorBoard scalars, an atomic checkpoint per epoch and the best
/// weights, resumable. Returns kDone, or kInterrupted/kTerminated after
/// SIGINT/SIGTERM (checkpoint saved). Throws ConfigError for bad settings
/// (before anything is written), DataError, WeightsError or TrainingError.
/// With `config.write_shards`, packs the data instead (data/pack_shards.h).
Outcome run_training(TrainConfig config);

}  // namespace mnv2
