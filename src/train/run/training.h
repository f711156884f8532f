#pragma once

// The training run behind run_training(): set-up, resume and checkpoints in
// trainer.cpp; the epoch (steps, validation, best weights) in
// training_epoch.cpp.

#include <mobilenetv2/quantization/qat.h>
#include <mobilenetv2/weights/checkpoint.h>
#include "common/errors.h"
#include "common/thread_governor.h"
#include "data/data_loader.h"
#include "distributed/data_parallel.h"
#include "distributed/launch.h"
#include "distributed/process_group.h"
#include "eval/evaluate.h"
#include "train/config/train_config.h"
#include "train/outputs/checkpoint_saver.h"
#include "train/outputs/metrics_log.h"
#include "train/outputs/tensorboard_writer.h"
#include "train/step/ema.h"
#include "train/step/grad_scaler.h"
#include "train/step/lr_schedule.h"
#include "train/step/optimizer.h"

#include <memory>
#include <optional>
#include <string>

namespace mnv2 {

/// One training run; `run` is the epoch loop.
class Training {
 public:
  explicit Training(TrainConfig config)
      : c_(std::move(config)), run_folder_(c_.output) {}
  Outcome run();

 private:
  void setup();
  void resume();
  // Returns the signal that stopped the epoch, or 0.
  int train_epoch(int64_t epoch, EpochMetrics& metrics);
  void validate(EpochMetrics& metrics);
  /// The epoch's log line: losses, accuracy, throughput.
  std::string epoch_summary(const EpochMetrics& metrics) const;
  TrainingError non_finite_loss(double loss, int64_t epoch) const;
  // Distributed runs: rank 0 writes every file and prints progress.
  bool writer() const {
    return launch_.rank == 0;
  }
  int64_t world_size() const {
    return launch_.world_size;
  }
  /// Sums across ranks in place (nothing to do in one process).
  void sum_across_ranks(std::vector<torch::Tensor>& tensors);
  /// The stop signal any rank received (all ranks agree), or 0.
  int agreed_stop_signal();
  /// Every rank evaluates its shard; the counts are added up.
  EvalResult evaluate_everywhere(MobileNetV2& model);
  /// The mean training loss over `batches` batches of every rank.
  double mean_loss(const torch::Tensor& loss_sum, int64_t batches);
  int64_t optimizer_steps_per_epoch() const;
  void save_checkpoint();
  /// After the run's first checkpoint: its metrics files start over from
  /// the resumed rows, and a new run removes the previous run's leftovers.
  void take_over_run_files();
  void save_best(const EpochMetrics& metrics);

  TrainConfig c_;
  Launch launch_;
  std::unique_ptr<Distributed> distributed_;
  std::unique_ptr<DataParallel> data_parallel_;
  RunFolder run_folder_;
  std::optional<CheckpointSaver> saver_;  // once the best so far is known
  // Rank 0's metrics files and TensorBoard events, and whether they have
  // replaced what the folder held (at the first checkpoint).
  std::optional<MetricsLog> metrics_log_;
  std::optional<TensorBoardWriter> board_;
  bool run_files_taken_over_ = false;
  torch::Device device_ = torch::kCPU;
  std::optional<c10::ScalarType> amp_dtype_;
  Dataset train_set_;
  Dataset val_set_;
  ModelInfo info_;
  MobileNetV2 model_{nullptr};
  std::unique_ptr<Optimizer> optimizer_;
  std::unique_ptr<GradScaler> scaler_;
  std::optional<ModelEma> ema_;
  std::optional<QatState> qat_;  // with --qat
  std::unique_ptr<DataLoader> train_loader_;
  std::unique_ptr<DataLoader> val_loader_;
  LrSchedule schedule_;
  TrainingProgress progress_;
  double last_lr_ = 0;
  std::optional<ThreadGovernor> threads_;  // set up by run()
};

/// `value` with `digits` decimals, for log lines.
std::string fixed(double value, int digits);

}  // namespace mnv2
