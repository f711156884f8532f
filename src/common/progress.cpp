#include "common/progress.h"

#include "common/log.h"

#include <unistd.h>

#include <cstdio>
#include <iomanip>
#include <sstream>

namespace mnv2 {

Progress::Progress(std::string label,
                   int64_t total_steps,
                   int64_t log_interval,
                   bool shown)
    : label_(std::move(label)),
      total_(total_steps),
      interval_(log_interval),
      shown_(shown),
      terminal_(::isatty(STDERR_FILENO) == 1),
      start_(std::chrono::steady_clock::now()),
      last_line_(start_) {}

void Progress::update(int64_t step, int64_t images, const std::string& stats) {
  if (!shown_) {
    return;
  }
  if (!terminal_ && step % interval_ != 0 && step != total_) {
    return;
  }
  const auto now = std::chrono::steady_clock::now();
  if (!terminal_ && min_seconds_ > 0) {
    if (std::chrono::duration<double>(now - last_line_).count() <
        min_seconds_) {
      return;
    }
    last_line_ = now;
  }
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  const double rate = elapsed > 0 ? static_cast<double>(images) / elapsed : 0;
  const double eta = step > 0 ? elapsed / static_cast<double>(step) *
                                    static_cast<double>(total_ - step)
                              : 0;
  std::ostringstream line;
  line << label_ << " " << step << "/" << total_ << " " << stats << " "
       << std::fixed << std::setprecision(1) << rate << " img/s ETA "
       << static_cast<int64_t>(eta) << "s";
  if (terminal_) {
    constexpr int kWidth = 24;
    const auto filled =
        static_cast<int>(kWidth * step / std::max<int64_t>(total_, 1));
    std::string bar(static_cast<size_t>(filled), '#');
    bar.resize(kWidth, '.');
    std::fprintf(stderr, "\r[%s] %s\033[K", bar.c_str(), line.str().c_str());
    std::fflush(stderr);
  } else {
    log::info(line.str());
  }
}

void Progress::finish() {
  if (shown_ && terminal_) {
    std::fprintf(stderr, "\n");
  }
}

}  // namespace mnv2
