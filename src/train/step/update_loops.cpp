#include "train/step/update_loops.h"

#include <torch/torch.h>

namespace mnv2 {

bool plain_cpu_floats(std::initializer_list<torch::Tensor> tensors) {
  for (const auto& t : tensors) {
    if (!t.defined() || !t.device().is_cpu() ||
        t.scalar_type() != torch::kFloat || !t.is_contiguous()) {
      return false;
    }
  }
  return true;
}

void sgd_update(torch::Tensor& param,
                const torch::Tensor& grad,
                torch::Tensor* buffer,
                const SgdUpdate& update) {
  const int64_t n = param.numel();
  TORCH_CHECK(grad.numel() == n && (!buffer || buffer->numel() == n),
              "sgd_update: sizes differ");
  float* p = param.data_ptr<float>();
  const float* g = grad.const_data_ptr<float>();
  float* b = buffer ? buffer->data_ptr<float>() : nullptr;
  const auto lr = static_cast<float>(update.lr);
  const auto decay = static_cast<float>(update.weight_decay);
  const auto momentum = static_cast<float>(update.momentum);
  for (int64_t i = 0; i < n; ++i) {
    const float decayed = g[i] + decay * p[i];
    float direction = decayed;
    if (b != nullptr) {
      b[i] = b[i] * momentum + decayed;
      direction = update.nesterov ? decayed + momentum * b[i] : b[i];
    }
    p[i] = p[i] - lr * direction;
  }
}

double sum_of_squares(const torch::Tensor& values) {
  const float* v = values.const_data_ptr<float>();
  double sum = 0;
  for (int64_t i = 0, n = values.numel(); i < n; ++i) {
    sum += static_cast<double>(v[i]) * v[i];
  }
  return sum;
}

void scale_in_place(torch::Tensor& values, float factor) {
  float* v = values.data_ptr<float>();
  for (int64_t i = 0, n = values.numel(); i < n; ++i) {
    v[i] *= factor;
  }
}

}  // namespace mnv2
