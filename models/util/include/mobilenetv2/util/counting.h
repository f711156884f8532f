#pragma once

#include <torch/nn/module.h>

#include <cstdint>

namespace mnv2 {

/// Number of parameters (trainable or not; buffers excluded), as Python's
/// `sum(p.numel() for p in model.parameters())`.
int64_t count_parameters(const torch::nn::Module& module);

/// Multiply-adds of one forward pass at `height` x `width` for a network whose
/// modules run in declaration order (MobileNetV2 does): every Conv2d and
/// Linear; BatchNorm, activations and additions are not counted, as in the
/// paper's 300M figure.
int64_t count_multiply_adds(const torch::nn::Module& module,
                            int64_t height,
                            int64_t width);

}  // namespace mnv2
