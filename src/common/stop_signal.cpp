#include "common/stop_signal.h"

#include <atomic>
#include <csignal>

namespace mnv2 {

namespace {
std::atomic<int> received{0};

extern "C" void on_stop_signal(int signal) {
  if (received.load() == signal) {
    std::signal(signal, SIG_DFL);
    std::raise(signal);
    return;
  }
  received.store(signal);
}
}  // namespace

void install_stop_signal_handlers() {
  std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);
}

int stop_signal() {
  return received.load();
}

Outcome outcome_of_signal(int signal) {
  return signal == SIGINT ? Outcome::kInterrupted : Outcome::kTerminated;
}

}  // namespace mnv2
