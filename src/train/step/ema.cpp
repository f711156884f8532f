#include "train/step/ema.h"

#include <mobilenetv2/torch_files/load_weights.h>
#include <mobilenetv2/torch_files/state_dict.h>

#include <torch/torch.h>

#include <algorithm>

namespace mnv2 {

ModelEma::ModelEma(const MobileNetV2& model,
                   double decay,
                   int64_t update_every,
                   int64_t images_per_step,
                   int64_t epochs)
    : update_every_(update_every) {
  // torchvision: alpha = min(1, (1 - decay) * batch * steps / epochs).
  const double adjust = static_cast<double>(images_per_step * update_every) /
                        static_cast<double>(epochs);
  decay_ = 1.0 - std::min(1.0, (1.0 - decay) * adjust);
  ema_ = MobileNetV2(model->options);
  const auto device = model->parameters().front().device();
  ema_->to(device);
  load_weights(*ema_, state_dict_of(*model));
  ema_->eval();
  for (auto& p : ema_->parameters()) {
    p.set_requires_grad(false);
  }
  const auto source = state_dict_of(*model);
  for (const auto& item : state_dict_of(*ema_)) {
    pairs_.emplace_back(item.value(), source[item.key()]);
  }
}

void ModelEma::after_step(int64_t global_step, bool in_warmup) {
  if (global_step % update_every_ != 0) {
    return;
  }
  torch::NoGradGuard no_grad;
  for (auto& [average, value] : pairs_) {
    if (in_warmup || !average.is_floating_point()) {
      average.copy_(value);
    } else {
      average.lerp_(value, 1.0 - decay_);
    }
  }
}

}  // namespace mnv2
