#include "train/step/grad_scaler.h"

#include <torch/torch.h>

namespace mnv2 {

GradScaler::GradScaler(torch::Device device, bool enabled, Options options)
    : enabled_(enabled), options_(options) {
  const auto f = torch::TensorOptions().device(device).dtype(torch::kFloat);
  scale_ = torch::full({1}, options_.init_scale, f);
  growth_tracker_ = torch::zeros({1}, f.dtype(torch::kInt));
  found_inf_ = torch::zeros({1}, f);
}

torch::Tensor GradScaler::scale(const torch::Tensor& loss) const {
  return enabled_ ? loss * scale_.to(loss.scalar_type()) : loss;
}

void GradScaler::unscale(const std::vector<torch::Tensor>& params) {
  if (!enabled_) {
    return;
  }
  std::vector<torch::Tensor> grads;
  for (const auto& p : params) {
    if (p.grad().defined()) {
      grads.push_back(p.grad());
    }
  }
  found_inf_.zero_();
  const auto inv_scale = scale_.reciprocal();
  at::_amp_foreach_non_finite_check_and_unscale_(grads, found_inf_, inv_scale);
}

torch::Tensor GradScaler::skip_step() const {
  return enabled_ ? found_inf_.squeeze().gt(0) : torch::Tensor();
}

void GradScaler::update() {
  if (!enabled_) {
    return;
  }
  at::_amp_update_scale_(scale_,
                         growth_tracker_,
                         found_inf_,
                         options_.growth_factor,
                         options_.backoff_factor,
                         options_.growth_interval);
}

void GradScaler::load(const torch::Tensor& scale,
                      const torch::Tensor& growth_tracker) {
  scale_.copy_(scale.reshape({1}));
  growth_tracker_.copy_(growth_tracker.reshape({1}));
}

}  // namespace mnv2
