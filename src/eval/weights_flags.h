#pragma once

#include "common/flag_table.h"

namespace mnv2 {

// The flags that choose how a weights file is loaded, shared by every
// program that loads weights through InferenceModel (its Config has `ema` and
// `allow_non_finite`).

template <class Config>
Flag<Config> raw_weights_flag() {
  return {"raw",
          "",
          "use a checkpoint's raw weights, not its EMA",
          &Config::ema,
          "ema",
          FlagKind::kSwitch,
          /*switch_value=*/false};
}

template <class Config>
Flag<Config> allow_non_finite_flag() {
  return {"allow-non-finite",
          "",
          "load weights that hold NaN/inf values (debugging)",
          &Config::allow_non_finite,
          "",
          FlagKind::kSwitch};
}

}  // namespace mnv2
