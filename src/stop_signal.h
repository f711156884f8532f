#pragma once

namespace mnv2 {

/// Catches SIGINT and SIGTERM so a long job can save and exit cleanly; a
/// second signal of the same kind ends the process at once.
void install_stop_signal_handlers();
/// The signal received (SIGINT or SIGTERM), or 0.
int stop_signal();
/// The conventional exit status for a stop by `signal`: 128 + signal.
int exit_status_for_signal(int signal);

}  // namespace mnv2
