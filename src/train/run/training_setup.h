#pragma once

#include <mobilenetv2/preprocessing/preprocessing.h>
#include "data/dataset.h"
#include "train/config/train_config.h"

#include <mobilenetv2/nn/mobilenet_v2.h>

#include <string>

namespace mnv2 {

/// Training and validation sets: --data and --val-data, or `train/` and `val/`
/// inside --data, or a `val/` beside a --data that is a `train/` folder.
/// Throws ConfigError when no validation data is found, DataError when the two
/// sets name different classes.
std::pair<Dataset, Dataset> open_train_and_val(const TrainConfig& config);

/// The model to train and the input normalisation its weights expect.
struct TrainingModel {
  MobileNetV2 model{nullptr};
  Normalization normalization;
  ResizePolicy resize = ResizePolicy::kShorterSideCenterCrop;
};

/// The model to train: fresh (torchvision's init), or `--pretrained` weights
/// (any format; their padding, BatchNorm epsilon and normalisation kept)
/// with a new head when the class count differs; features optionally frozen.
TrainingModel build_training_model(const TrainConfig& config,
                                   int64_t num_classes);

}  // namespace mnv2
