#include "common/autocast.h"
#include "common/errors.h"
#include "common/log.h"
#include "common/progress.h"
#include "common/stop_signal.h"
#include "eval/evaluate.h"
#include "train/mixup.h"
#include "train/training.h"

#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <iomanip>
#include <random>

namespace fs = std::filesystem;

namespace mnv2 {

std::string fixed(double value, int digits) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(digits) << value;
  return out.str();
}

int Training::train_epoch(int64_t epoch, EpochMetrics& metrics) {
  model_->train();
  train_loader_->start_epoch(epoch, progress_.batch_in_epoch);
  const auto steps = train_loader_->batches_per_epoch();
  const auto classes = static_cast<int64_t>(info_.class_names.size());
  const bool mixing = c_.mixup_alpha > 0 || c_.cutmix_alpha > 0;
  const auto params = optimizer_->parameters();
  Progress bar(
      "epoch " + std::to_string(epoch + 1) + "/" + std::to_string(c_.epochs),
      steps,
      c_.log_interval);
  auto loss_sum = torch::zeros({}, torch::TensorOptions().device(device_));
  int64_t done = 0;
  int64_t images = 0;
  std::string stats;
  const auto start = std::chrono::steady_clock::now();
  while (auto batch = train_loader_->next()) {
    auto x = normalize_images(batch->images, device_, c_.channels_last);
    const auto y = batch->labels.to(device_, /*non_blocking=*/true);
    torch::Tensor loss;
    {
      AutocastGuard autocast(device_.type(),
                             amp_dtype_.value_or(torch::kFloat),
                             amp_dtype_.has_value());
      if (mixing) {
        std::seed_seq seeds{static_cast<uint32_t>(c_.seed),
                            static_cast<uint32_t>(progress_.global_step)};
        std::mt19937_64 rng(seeds);
        const auto mixed =
            mix_batch(x, y, classes, c_.mixup_alpha, c_.cutmix_alpha, rng);
        loss = soft_cross_entropy(
            model_->forward(mixed.images), mixed.targets, c_.label_smoothing);
      } else {
        loss = torch::nn::functional::cross_entropy(
            model_->forward(x).to(torch::kFloat),
            y,
            torch::nn::functional::CrossEntropyFuncOptions().label_smoothing(
                c_.label_smoothing));
      }
    }
    optimizer_->zero_grad();
    scaler_->scale(loss).backward();
    scaler_->unscale(params);
    if (c_.clip_grad_norm > 0) {
      clip_grad_norm(params, c_.clip_grad_norm);
    }
    last_lr_ = schedule_.at(progress_.global_step);
    optimizer_->step(last_lr_, scaler_->skip_step());
    scaler_->update();
    ++progress_.global_step;
    if (ema_) {
      ema_->after_step(progress_.global_step, epoch < c_.warmup_epochs);
    }
    loss_sum += loss.detach().to(torch::kFloat);
    ++done;
    ++progress_.batch_in_epoch;
    images += batch->labels.size(0);
    if (done % c_.log_interval == 0 || progress_.batch_in_epoch == steps) {
      const double mean = loss_sum.item<double>() / static_cast<double>(done);
      if (!std::isfinite(mean) && !scaler_->enabled()) {
        throw non_finite_loss(mean, epoch);
      }
      stats = "loss " + fixed(mean, 4) + " lr " + fixed(last_lr_, 5);
    }
    bar.update(progress_.batch_in_epoch, images, stats);
    if (const int signal = stop_signal()) {
      bar.finish();
      return signal;
    }
  }
  bar.finish();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  metrics.train_loss =
      done > 0 ? loss_sum.item<double>() / static_cast<double>(done) : 0.0;
  if (!std::isfinite(metrics.train_loss) && !scaler_->enabled()) {
    throw non_finite_loss(metrics.train_loss, epoch);
  }
  metrics.train_images_per_second = static_cast<double>(images) / seconds;
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
  EvalOptions options;
  options.device = device_;
  options.channels_last = c_.channels_last;
  if (amp_dtype_) {
    options.amp_dtype = amp_dtype_;
  }
  const auto classes = static_cast<int64_t>(info_.class_names.size());
  model_->eval();
  const auto raw =
      evaluate([&](const torch::Tensor& x) { return model_->forward(x); },
               *val_loader_,
               classes,
               options);
  metrics.val_loss = raw.loss;
  metrics.val_top1 = raw.top1;
  metrics.val_top5 = raw.top5;
  if (ema_) {
    const auto averaged = evaluate(
        [&](const torch::Tensor& x) { return ema_->model()->forward(x); },
        *val_loader_,
        classes,
        options);
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
