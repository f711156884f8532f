#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace mnv2 {

/// What one training epoch produced.
struct EpochMetrics {
  int64_t epoch = 0;  ///< 1-based
  double train_loss = 0;
  double val_loss = 0;
  double val_top1 = 0;
  double val_top5 = 0;
  std::optional<double> ema_val_top1;
  std::optional<double> ema_val_top5;
  double lr = 0;  ///< at the end of the epoch
  double epoch_seconds = 0;
  double train_images_per_second = 0;
  int64_t skipped_images = 0;
};

/// Appends each epoch to a JSON-lines and a CSV file. Lines of epochs at or
/// after `first_epoch` that an interrupted run left behind are dropped on
/// resume.
class MetricsLog {
 public:
  /// Reads the rows of epochs before `first_epoch` from the files (a
  /// resumed run's); writes nothing yet.
  MetricsLog(std::string jsonl_path, std::string csv_path, int64_t first_epoch);
  /// Rewrites both files to the rows read: called once the run has its
  /// first checkpoint, so a run that fails before it leaves them untouched.
  void start();
  /// Appends an epoch's row (starting the files first if need be).
  void write(const EpochMetrics& metrics);
  const std::vector<EpochMetrics>& history() const {
    return history_;
  }

 private:
  std::string jsonl_path_;
  std::string csv_path_;
  std::vector<EpochMetrics> history_;
  bool started_ = false;
};

}  // namespace mnv2
