#pragma once

#include <torch/types.h>

#include <vector>

namespace mnv2 {

/// Dynamic loss scaling with the semantics of PyTorch's GradScaler (initial
/// scale 2^16, x2 after 2000 clean steps, x0.5 and a skipped step on inf/NaN),
/// kept on the device: no host synchronisation per step.
class GradScaler {
 public:
  struct Options {
    double init_scale = 65536.0;
    double growth_factor = 2.0;
    double backoff_factor = 0.5;
    int64_t growth_interval = 2000;
  };
  GradScaler(torch::Device device, bool enabled, Options options);
  GradScaler(torch::Device device, bool enabled)
      : GradScaler(device, enabled, Options{}) {}

  torch::Tensor scale(const torch::Tensor& loss) const;
  /// Divides the gradients by the scale and records whether any is inf/NaN.
  void unscale(const std::vector<torch::Tensor>& params);
  /// A 0-dim bool tensor: the step must be skipped (undefined if disabled).
  torch::Tensor skip_step() const;
  /// Grows or backs off the scale after the step.
  void update();

  bool enabled() const {
    return enabled_;
  }
  torch::Tensor scale_tensor() const {
    return scale_;
  }
  torch::Tensor growth_tracker() const {
    return growth_tracker_;
  }
  void load(const torch::Tensor& scale, const torch::Tensor& growth_tracker);

 private:
  bool enabled_;
  Options options_;
  torch::Tensor scale_;           // float [1]
  torch::Tensor growth_tracker_;  // int32 [1]
  torch::Tensor found_inf_;       // float [1]
};

}  // namespace mnv2
