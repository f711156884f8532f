#include "train/step/lr_schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace mnv2 {

double LrSchedule::at(int64_t step) const {
  const auto per_epoch =
      static_cast<double>(std::max<int64_t>(1, steps_per_epoch));
  const double warmup_steps = static_cast<double>(warmup_epochs) * per_epoch;
  const auto s = static_cast<double>(step);
  if (s < warmup_steps) {
    return base_lr * (warmup_decay + (1 - warmup_decay) * s / warmup_steps);
  }
  const double epoch = (s - warmup_steps) / per_epoch;  // into the main phase
  const double main_epochs = static_cast<double>(epochs - warmup_epochs);
  if (kind == "step") {
    return base_lr *
           std::pow(gamma, std::floor(epoch / static_cast<double>(step_size)));
  }
  if (kind == "exponential") {
    return base_lr * std::pow(gamma, epoch);
  }
  const double t = std::min(epoch / std::max(main_epochs, 1e-9), 1.0);
  return min_lr + (base_lr - min_lr) * (1 + std::cos(std::numbers::pi * t)) / 2;
}

}  // namespace mnv2
