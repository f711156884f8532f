#pragma once

#include <mobilenetv2/weights/checkpoint.h>

#include <string>

namespace mnv2 {

/// Reads Keras' MobileNetV2 weights from an HDF5 file (`save_weights` or a
/// whole `model.save`, e.g. keras.applications' ImageNet files) onto
/// torchvision's keys: kernels HWIO -> OIHW, depthwise (k, k, C, 1) ->
/// (C, 1, k, k), Dense transposed, BatchNorm gamma/beta/moving statistics.
/// Both naming generations: Keras 2.1 (`mobl{i}_conv_{i}_expand`,
/// `bn{i}_conv_{i}_bn_expand`, ...) and keras-applications / tf.keras 2.x
/// (`expanded_conv_*`, `block_{i}_expand`, `block_{i}_expand_BN`, ...); any
/// width multiplier; with or without the classifier (`Logits` or
/// `predictions`). The model info says TF "SAME" padding, BatchNorm epsilon
/// 1e-3 and Keras' preprocessing (the image squashed to the input size, as
/// `load_img(target_size=...)`, then x / 127.5 - 1); the input size from a
/// keras.applications file name (`..._1.0_224.h5`), else 224.
/// Throws WeightsError (one line naming the file) for anything else.
LoadedWeights read_keras_mobilenet_v2(const std::string& path);

/// Whether `path` is an HDF5 file (its signature), as Keras writes them.
bool is_keras_file(const std::string& path);

}  // namespace mnv2
