#pragma once

#include "train_config.h"

namespace mnv2 {

/// Trains as `config` says: one epoch after another with evaluation,
/// metrics, TensorBoard scalars, an atomic checkpoint per epoch and the best
/// weights, resumable. Returns the process exit status: 0, or 130/143 after
/// SIGINT/SIGTERM (checkpoint saved). Throws UsageError for bad settings
/// (before anything is written), DataError, WeightsError or TrainingError.
int run_training(TrainConfig config);

}  // namespace mnv2
