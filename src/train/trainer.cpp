#include "train/trainer.h"
#include "train/training.h"

#include "common/checkpoint.h"
#include "common/errors.h"
#include "common/log.h"
#include "common/memory_format.h"
#include "common/progress.h"
#include "common/runtime.h"
#include "common/stop_signal.h"
#include "data/data_loader.h"
#include "eval/evaluate.h"
#include "train/curves_plot.h"
#include "train/ema.h"
#include "train/epoch_metrics.h"
#include "train/grad_scaler.h"
#include "train/lr_schedule.h"
#include "train/mixup.h"
#include "train/optimizer.h"
#include "train/tensorboard_writer.h"
#include "train/training_setup.h"

#include <mobilenetv2/counting.h>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <iomanip>

namespace fs = std::filesystem;

namespace mnv2 {

namespace {

LoaderOptions loader_options(const TrainConfig& c, bool train, bool cuda) {
  LoaderOptions o;
  o.batch_size = c.batch_size;
  o.workers = c.workers;
  o.shuffle = train;
  o.seed = c.seed;
  o.strict = c.strict_data;
  o.train = train;
  o.train_transform.size = static_cast<int>(c.img_size);
  o.train_transform.scale_min = c.crop_scale_min;
  o.train_transform.hflip_prob = c.hflip;
  o.train_transform.random_erase_prob = c.random_erase;
  o.train_transform.trivial_augment = c.trivial_augment;
  o.eval_transform.resize_size = static_cast<int>(c.val_resize);
  o.eval_transform.crop_size = static_cast<int>(c.val_crop);
  o.channels_last = c.channels_last;
  // On a GPU, ship 8-bit batches and normalise there; on CPU the workers do.
  o.normalize = !cuda;
  o.pin_memory = cuda;
  return o;
}

}  // namespace

void Training::setup() {
  device_ = resolve_device(c_.device);
  if (c_.amp) {
    amp_dtype_ = c_.amp_dtype == "bf16" ? torch::kBFloat16 : torch::kHalf;
  }
  torch::manual_seed(c_.seed);
  if (c_.deterministic) {
    at::globalContext().setDeterministicAlgorithms(true, /*warn_only=*/true);
  }
  if (device_.is_cuda()) {
    at::globalContext().setBenchmarkCuDNN(!c_.deterministic);
  }
  std::tie(train_set_, val_set_) = open_train_and_val(c_);
  const auto classes = static_cast<int64_t>(train_set_.class_names.size());
  model_ = build_training_model(c_, classes);
  model_->to(device_);
  if (c_.channels_last) {
    use_channels_last(*model_);
  }
  info_ = {model_->options,
           train_set_.class_names,
           c_.img_size,
           c_.val_resize,
           c_.val_crop};

  OptimizerOptions opt;
  opt.kind = c_.optimizer;
  opt.momentum = c_.momentum;
  opt.nesterov = c_.nesterov;
  opt.eps = c_.opt_eps;
  optimizer_ = std::make_unique<Optimizer>(
      weight_decay_groups(*model_, c_.weight_decay, c_.norm_weight_decay), opt);
  scaler_ = std::make_unique<GradScaler>(
      device_, amp_dtype_ && *amp_dtype_ == torch::kHalf);

  auto train_options = loader_options(c_, true, device_.is_cuda());
  train_options.drop_last =
      static_cast<int64_t>(train_set_.samples.size()) >= c_.batch_size;
  train_loader_ = std::make_unique<DataLoader>(train_set_, train_options);
  val_loader_ = std::make_unique<DataLoader>(
      val_set_, loader_options(c_, false, device_.is_cuda()));

  schedule_ = {c_.lr,
               c_.lr_scheduler,
               c_.lr_step_size,
               c_.lr_gamma,
               c_.lr_min,
               c_.warmup_epochs,
               c_.warmup_decay,
               c_.epochs,
               train_loader_->batches_per_epoch()};
  if (c_.ema) {
    ema_.emplace(model_, c_.ema_decay, c_.ema_steps, c_.batch_size, c_.epochs);
  }
  log::info(
      log::cat("MobileNetV2 width ",
               c_.width_mult,
               ", ",
               classes,
               " classes, ",
               count_parameters(*model_),
               " parameters, ",
               count_multiply_adds(*model_, c_.img_size, c_.img_size) / 1e6,
               "M multiply-adds at ",
               c_.img_size));
  log::info(log::cat("data: ",
                     train_set_.samples.size(),
                     " training images in '",
                     train_set_.origin,
                     "', ",
                     val_set_.samples.size(),
                     " validation images in '",
                     val_set_.origin,
                     "'"));
  log::info(log::cat("recipe ",
                     c_.recipe,
                     ": ",
                     c_.optimizer,
                     " lr ",
                     c_.lr,
                     " (",
                     c_.lr_scheduler,
                     "), ",
                     c_.epochs,
                     " epochs of ",
                     train_loader_->batches_per_epoch(),
                     " steps, batch ",
                     c_.batch_size,
                     "; device ",
                     device_.str(),
                     ", ",
                     at::get_num_threads(),
                     " threads",
                     amp_dtype_ ? ", AMP " + c_.amp_dtype : std::string()));
}

void Training::resume() {
  const auto cp = read_checkpoint(c_.resume);
  if (cp.info.class_names != info_.class_names ||
      cp.info.options.width_mult() != info_.options.width_mult()) {
    throw ConfigError("--resume '" + c_.resume +
                      "' was trained on other classes or another width");
  }
  load_weights(*model_, cp.model, LoadMode::kStrict, c_.resume);
  if (ema_ && cp.model_ema) {
    load_weights(*ema_->model(), *cp.model_ema, LoadMode::kStrict, c_.resume);
  }
  optimizer_->load_state(cp.optimizer);
  scaler_->load(cp.scaler_scale.to(device_),
                cp.scaler_growth_tracker.to(device_));
  auto generator = at::detail::getDefaultCPUGenerator();
  generator.set_state(cp.rng_state);
  if (device_.is_cuda() && cp.cuda_rng_state.defined()) {
    auto cuda_generator = at::globalContext().defaultGenerator(device_);
    cuda_generator.set_state(cp.cuda_rng_state);
  }
  progress_ = cp.progress;
  log::info(log::cat("resumed from ",
                     c_.resume,
                     " at epoch ",
                     progress_.epoch + 1,
                     ", batch ",
                     progress_.batch_in_epoch));
}

void Training::save_checkpoint() {
  Checkpoint cp;
  cp.model = state_dict_of(*model_);
  if (ema_) {
    cp.model_ema = state_dict_of(*ema_->model());
  }
  cp.optimizer = optimizer_->state();
  cp.scaler_scale = scaler_->scale_tensor();
  cp.scaler_growth_tracker = scaler_->growth_tracker();
  cp.rng_state = at::detail::getDefaultCPUGenerator().get_state();
  if (device_.is_cuda()) {
    cp.cuda_rng_state =
        at::globalContext().defaultGenerator(device_).get_state();
  }
  cp.progress = progress_;
  cp.info = info_;
  cp.config_json = to_json(c_);
  saver_->save_checkpoint(cp);
}

Outcome Training::run() {
  // The programs refuse a bad command line first; this guards library use.
  const auto problems = c_.problems();
  if (!problems.empty()) {
    throw ConfigError(problems.front());
  }
  const int stale = run_folder_.prepare();
  log::init(run_folder_.log);
  if (stale > 0) {
    log::info(log::cat("removed ",
                       stale,
                       " temporary file(s) a killed run left in ",
                       run_folder_.folder));
  }
  configure_runtime(c_.threads);
  setup();
  log::info("config: " + to_json(c_));
  if (!c_.resume.empty()) {
    resume();
  }
  saver_.emplace(run_folder_, progress_.best_top1);
  install_stop_signal_handlers();
  MetricsLog metrics_log(
      run_folder_.metrics_jsonl, run_folder_.metrics_csv, progress_.epoch + 1);
  TensorBoardWriter board(c_.output);
  for (int64_t epoch = progress_.epoch; epoch < c_.epochs; ++epoch) {
    EpochMetrics metrics;
    metrics.epoch = epoch + 1;
    const auto start = std::chrono::steady_clock::now();
    if (const int signal = train_epoch(epoch, metrics)) {
      save_checkpoint();
      log::warn(log::cat("stopped by signal ",
                         signal,
                         " in epoch ",
                         epoch + 1,
                         " after batch ",
                         progress_.batch_in_epoch,
                         "; checkpoint saved, continue with --resume ",
                         run_folder_.checkpoint));
      return outcome_of_signal(signal);
    }
    validate(metrics);
    metrics.epoch_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count();
    progress_.epoch = epoch + 1;
    progress_.batch_in_epoch = 0;
    save_best(metrics);
    metrics_log.write(metrics);
    for (const auto& [tag, value] : std::vector<std::pair<std::string, double>>{
             {"train/loss", metrics.train_loss},
             {"train/lr", metrics.lr},
             {"train/images_per_second", metrics.train_images_per_second},
             {"val/loss", metrics.val_loss},
             {"val/top1", metrics.val_top1},
             {"val/top5", metrics.val_top5}}) {
      board.add_scalar(tag, value, metrics.epoch);
    }
    if (metrics.ema_val_top1) {
      board.add_scalar("val/ema_top1", *metrics.ema_val_top1, metrics.epoch);
    }
    board.flush();
    save_checkpoint();
    log::info(log::cat(
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
            ? log::cat(
                  ", ", metrics.skipped_images, " unreadable images skipped")
            : std::string()));
    if (const int signal = stop_signal()) {
      return outcome_of_signal(signal);
    }
  }
  write_curves_plot(metrics_log.history(), run_folder_.curves);
  log::info(log::cat("done: best val top-1 ",
                     fixed(progress_.best_top1, 2),
                     "%; weights in ",
                     run_folder_.best_weights));
  return Outcome::kDone;
}

Outcome run_training(TrainConfig config) {
  return Training(std::move(config)).run();
}

}  // namespace mnv2
