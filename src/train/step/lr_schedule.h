#pragma once

#include <cstdint>
#include <string>

namespace mnv2 {

struct LrSchedule {
  double base_lr = 0.1;
  std::string kind = "step";  ///< step | exponential | cosine
  int64_t step_size = 1;      ///< epochs per step decay
  double gamma = 0.98;        ///< step and exponential decay factor
  double min_lr = 0.0;        ///< cosine floor
  int64_t warmup_epochs = 0;
  double warmup_decay = 0.01;  ///< warmup starts at base_lr * warmup_decay
  int64_t epochs = 1;
  int64_t steps_per_epoch = 1;

  /// Learning rate at global iteration `step` (0-based): linear warmup from
  /// base_lr * warmup_decay, then the main schedule on the epochs after the
  /// warmup (torchvision's SequentialLR), evaluated per iteration: step decay
  /// changes at epoch boundaries, exponential and cosine move every step.
  double at(int64_t step) const;
};

}  // namespace mnv2
