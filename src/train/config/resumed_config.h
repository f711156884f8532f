#pragma once

#include "train/config/train_config.h"

#include <functional>
#include <string>

namespace mnv2 {

/// The configuration `mnv2-train --resume CHECKPOINT` runs with: the one the
/// checkpoint stored (its recipe's values included), with `apply_given` (the
/// flags given on this command line) on top; a given --recipe other than the
/// stored one is applied first. A warning names each flag whose value then
/// differs from the stored one. A checkpoint with no stored configuration
/// (written before it was kept) gives `apply_given` over the defaults and
/// the given recipe, with a warning.
TrainConfig resumed_config(
    const std::string& checkpoint,
    const std::function<void(TrainConfig&)>& apply_given);

}  // namespace mnv2
