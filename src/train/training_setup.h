#pragma once

#include "data/dataset.h"
#include "train/train_config.h"

#include <mobilenetv2/mobilenet_v2.h>

#include <string>

namespace mnv2 {

/// Training and validation sets: --data and --val-data, or `train/` and `val/`
/// inside --data, or a `val/` beside a --data that is a `train/` folder.
/// Throws ConfigError when no validation data is found, DataError when the two
/// sets name different classes.
std::pair<Dataset, Dataset> open_train_and_val(const TrainConfig& config);

/// The model to train: fresh (torchvision's init), or `--pretrained` weights
/// with a new head when the class count differs; features optionally frozen.
MobileNetV2 build_training_model(const TrainConfig& config,
                                 int64_t num_classes);

}  // namespace mnv2
