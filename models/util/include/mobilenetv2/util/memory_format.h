#pragma once

#include <torch/nn/module.h>

namespace mnv2 {

/// Converts 4-D parameters to channels_last memory in place (training and
/// inference both run NHWC on CPU: 1.6-2x faster here).
void use_channels_last(torch::nn::Module& module);

}  // namespace mnv2
