#pragma once

#include "train/outputs/metrics_log.h"

#include <string>
#include <vector>

namespace mnv2 {

/// A PNG with two panels: training and validation loss, and validation
/// top-1 (and EMA top-1) per epoch. Does nothing for an empty history.
void write_curves_plot(const std::vector<EpochMetrics>& history,
                       const std::string& path);

}  // namespace mnv2
