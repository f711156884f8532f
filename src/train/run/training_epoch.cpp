#include "common/errors.h"
#include "common/log.h"
#include "common/progress.h"
#include "common/stop_signal.h"
#include "data/network_input.h"
#include "eval/evaluate.h"
#include "train/run/distributed_eval.h"
#include "train/run/training.h"
#include "train/step/train_step.h"

#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <iomanip>

namespace fs = std::filesystem;

namespace mnv2 {

std::string fixed(double value, int digits) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(digits) << value;
  return out.str();
}

std::string Training::epoch_summary(const EpochMetrics& metrics) const {
  return log::cat(
      "epoch ",
      metrics.epoch,
      "/",
      c_.epochs,
      ": train loss ",
      fixed(metrics.train_loss, 4),
      ", val loss ",
      fixed(metrics.val_loss, 4),
      ", top-1 ",
      fixed(metrics.val_top1, 2),
      "%, top-5 ",
      fixed(metrics.val_top5, 2),
      "%",
      metrics.ema_val_top1
          ? ", EMA top-1 " + fixed(*metrics.ema_val_top1, 2) + "%"
          : std::string(),
      ", ",
      fixed(metrics.train_images_per_second, 1),
      " img/s, ",
      fixed(metrics.epoch_seconds, 1),
      " s",
      metrics.skipped_images
          ? log::cat(", ", metrics.skipped_images, " unreadable images skipped")
          : std::string());
}

int Training::train_epoch(int64_t epoch, EpochMetrics& metrics) {
  model_->train();
  if (c_.freeze_features) {
    // Frozen features keep their BatchNorm statistics as well as their
    // weights: the pretrained network computes as it did.
    model_->features->eval();
  }
  train_loader_->start_epoch(epoch, progress_.batch_in_epoch);
  const auto steps = train_loader_->batches_per_epoch();
  TrainStepParts parts{model_,
                       optimizer_.get(),
                       scaler_.get(),
                       ema_ ? &*ema_ : nullptr,
                       data_parallel_.get(),
                       {}};
  if (qat_) {
    // Frozen features keep their statistics from the first epoch on.
    qat_->batchnorm_frozen =
        c_.freeze_features || epoch >= c_.qat_freeze_bn_epoch;
    parts.forward = [this](const torch::Tensor& x) {
      return qat_forward(model_, *qat_, x);
    };
  }
  const TrainStepSettings settings{
      device_,
      amp_dtype_,
      static_cast<int64_t>(info_.class_names.size()),
      c_.label_smoothing,
      c_.mixup_alpha,
      c_.cutmix_alpha,
      c_.clip_grad_norm,
      c_.seed,
      c_.accumulate_steps};
  Progress bar(
      "epoch " + std::to_string(epoch + 1) + "/" + std::to_string(c_.epochs),
      steps,
      c_.log_interval,
      writer());
  const int64_t accumulate = c_.accumulate_steps;
  // A resumed epoch carries on with the losses of its first batches.
  auto loss_sum = torch::full(
      {}, progress_.epoch_loss_sum, torch::TensorOptions().device(device_));
  int64_t done = progress_.batch_in_epoch;
  int64_t images = 0;
  std::string stats;
  const auto start = std::chrono::steady_clock::now();
  while (auto batch = train_loader_->next()) {
    threads_->poll();
    // Gradients add up over `accumulate` micro-batches; the ranks reduce
    // them (and the optimiser steps) only on the last one (DDP's no_sync).
    const int64_t micro = progress_.batch_in_epoch % accumulate;
    const bool step_now =
        micro == accumulate - 1 || progress_.batch_in_epoch + 1 == steps;
    const auto x = normalize_images(
        batch->images, device_, c_.channels_last, info_.normalization);
    const auto y = batch->labels.to(device_, /*non_blocking=*/true);
    const double lr = schedule_.at(progress_.global_step);
    const auto loss = train_micro_batch(
        parts,
        settings,
        x,
        y,
        {micro, step_now, progress_.global_step, lr, epoch < c_.warmup_epochs});
    if (step_now) {
      last_lr_ = lr;
      ++progress_.global_step;
    }
    loss_sum += loss.to(torch::kFloat);
    ++done;
    ++progress_.batch_in_epoch;
    images += batch->labels.size(0);
    if (done % c_.log_interval == 0 || progress_.batch_in_epoch == steps) {
      const double mean = mean_loss(loss_sum, done);
      if (!std::isfinite(mean) && !scaler_->enabled()) {
        throw non_finite_loss(mean, epoch);
      }
      stats = "loss " + fixed(mean, 4) + " lr " + fixed(last_lr_, 5);
    }
    bar.update(progress_.batch_in_epoch, images * world_size(), stats);
    // Stops only between optimiser steps, where a checkpoint resumes exactly.
    if (step_now) {
      if (const int signal = agreed_stop_signal()) {
        bar.finish();
        // Every rank's share of the epoch's losses so far, for the resume.
        progress_.epoch_loss_sum =
            mean_loss(loss_sum, done) * static_cast<double>(done);
        return signal;
      }
    }
  }
  bar.finish();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  metrics.train_loss = done > 0 ? mean_loss(loss_sum, done) : 0.0;
  if (!std::isfinite(metrics.train_loss) && !scaler_->enabled()) {
    throw non_finite_loss(metrics.train_loss, epoch);
  }
  metrics.train_images_per_second =
      static_cast<double>(images * world_size()) / seconds;
  metrics.skipped_images = train_loader_->skipped_in_epoch();
  metrics.lr = last_lr_;
  return 0;
}

TrainingError Training::non_finite_loss(double loss, int64_t epoch) const {
  // Say what is really on disk: a first epoch may diverge before any save.
  const bool saved = std::filesystem::exists(run_folder_.checkpoint);
  return TrainingError(log::cat(
      "the training loss became ",
      loss,
      " in epoch ",
      epoch + 1,
      "; stopped, ",
      saved ? "the last good checkpoint " + run_folder_.checkpoint + " is kept"
            : "no checkpoint was written yet",
      " (try a lower --lr)"));
}

void Training::validate(EpochMetrics& metrics) {
  const auto raw = evaluate_everywhere(model_);
  metrics.val_loss = raw.loss;
  metrics.val_top1 = raw.top1;
  metrics.val_top5 = raw.top5;
  if (ema_) {
    auto averaged_model = ema_->model();
    const auto averaged = evaluate_everywhere(averaged_model);
    metrics.ema_val_top1 = averaged.top1;
    metrics.ema_val_top5 = averaged.top5;
  }
}

void Training::save_best(const EpochMetrics& m) {
  const bool ema_better = m.ema_val_top1 && *m.ema_val_top1 > m.val_top1;
  const double top1 = ema_better ? *m.ema_val_top1 : m.val_top1;
  const nlohmann::json extra = {{"val_top1", top1},
                                {"epoch", m.epoch},
                                {"weights", ema_better ? "ema" : "raw"}};
  if (saver_->save_if_best(
          top1, ema_better ? *ema_->model() : *model_, info_, extra)) {
    progress_.best_top1 = top1;
  }
}

}  // namespace mnv2
