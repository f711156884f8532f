#pragma once

#include <mobilenetv2/weights/checkpoint.h>

#include <string>

namespace mnv2 {

/// Any weights file the programs accept, by its content: our checkpoints,
/// torchvision-style state_dicts (also the older community layout, renamed),
/// and Keras HDF5 weights (converted). NaN/inf tensors are refused unless
/// `allow_non_finite`. Throws WeightsError naming the file.
LoadedWeights load_any_weights_file(const std::string& path,
                                    bool prefer_ema,
                                    bool allow_non_finite = false);

}  // namespace mnv2
