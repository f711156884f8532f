#pragma once

// The optimiser's per-parameter arithmetic as one loop over a CPU fp32
// tensor's values. A MobileNetV2 has 158 parameter tensors, most of a few
// hundred values: LibTorch's operators (five per parameter for SGD, three
// for clipping) cost more in dispatch and temporaries than in arithmetic.

#include <torch/types.h>

#include <initializer_list>

namespace mnv2 {

/// Whether every tensor is defined, on the CPU, fp32 and contiguous.
bool plain_cpu_floats(std::initializer_list<torch::Tensor> tensors);

struct SgdUpdate {
  double lr = 0;
  double weight_decay = 0;
  double momentum = 0;  ///< with a momentum buffer only
  bool nesterov = false;
};

/// PyTorch's SGD on plain_cpu_floats: g = grad + weight_decay * param;
/// with a buffer, buffer = momentum * buffer + g and the direction is
/// g + momentum * buffer (Nesterov) or buffer, else g; param -= lr *
/// direction. In fp32, as LibTorch's operators compute it (the scalars
/// rounded to float), up to where a compiler fuses a multiply and an add.
void sgd_update(torch::Tensor& param,
                const torch::Tensor& grad,
                torch::Tensor* buffer,
                const SgdUpdate& update);

/// The sum of the squares of a plain_cpu_floats tensor's values, in double.
double sum_of_squares(const torch::Tensor& values);

/// values *= factor, on a plain_cpu_floats tensor.
void scale_in_place(torch::Tensor& values, float factor);

}  // namespace mnv2
