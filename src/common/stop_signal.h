#pragma once

#include "common/errors.h"

namespace mnv2 {

/// Catches SIGINT and SIGTERM so a long job can save and exit cleanly; a
/// second signal of the same kind ends the process at once.
void install_stop_signal_handlers();
/// The signal received (SIGINT or SIGTERM), or 0.
int stop_signal();
/// How a run stopped by `signal` (SIGINT or SIGTERM) ended.
Outcome outcome_of_signal(int signal);

}  // namespace mnv2
