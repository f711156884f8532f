#pragma once

#include "dataset.h"
#include "train_config.h"

#include <mobilenetv2/mobilenet_v2.h>

#include <string>

namespace mnv2 {

/// Training and validation sets: --data and --val-data, or `train/` and `val/`
/// inside --data, or a `val/` beside a --data that is a `train/` folder.
/// Throws UsageError when no validation data is found, DataError when the two
/// sets name different classes.
std::pair<Dataset, Dataset> open_train_and_val(const TrainConfig& config);

/// Creates the output folder and proves it writable, before any training.
/// Throws UsageError naming the folder.
void prepare_output_folder(const std::string& folder);

/// The model to train: fresh (torchvision's init), or `--pretrained` weights
/// with a new head when the class count differs; features optionally frozen.
MobileNetV2 build_training_model(const TrainConfig& config,
                                 int64_t num_classes);

/// Converts 4-D parameters to channels_last memory in place.
void use_channels_last(torch::nn::Module& module);

}  // namespace mnv2
