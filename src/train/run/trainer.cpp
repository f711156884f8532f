#include "train/run/trainer.h"
#include "train/run/training.h"

#include <mobilenetv2/nn/fused_batchnorm.h>
#include <mobilenetv2/util/memory_format.h>
#include <mobilenetv2/vision/image_decode.h>
#include <mobilenetv2/weights/checkpoint.h>
#include "common/errors.h"
#include "common/log.h"
#include "common/progress.h"
#include "common/runtime.h"
#include "common/stop_signal.h"
#include "data/data_loader.h"
#include "data/pack_shards.h"
#include "eval/evaluate.h"
#include "train/outputs/curves_plot.h"
#include "train/outputs/metrics_log.h"
#include "train/outputs/tensorboard_writer.h"
#include "train/run/training_setup.h"
#include "train/step/ema.h"
#include "train/step/grad_scaler.h"
#include "train/step/lr_schedule.h"
#include "train/step/mixup.h"
#include "train/step/optimizer.h"

#include <mobilenetv2/util/counting.h>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <iomanip>

namespace fs = std::filesystem;

namespace mnv2 {

namespace {

LoaderOptions loader_options(const TrainConfig& c,
                             bool train,
                             bool cuda,
                             const Launch& launch) {
  LoaderOptions o;
  o.rank = launch.rank;
  o.world_size = launch.world_size;
  // Training shards are padded to equal step counts (DistributedSampler);
  // evaluation shards are disjoint, so that every image counts once.
  o.pad_shards = train;
  o.batch_size = c.batch_size;
  o.workers = c.workers;
  o.shuffle = train;
  o.shuffle_buffer = c.shuffle_buffer;
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

/// The epoch's row in metrics.jsonl/csv and its TensorBoard scalars.
void record_epoch(const EpochMetrics& metrics,
                  MetricsLog& metrics_log,
                  TensorBoardWriter& board) {
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
}

}  // namespace

int64_t Training::optimizer_steps_per_epoch() const {
  const auto batches = train_loader_->batches_per_epoch();
  return (batches + c_.accumulate_steps - 1) / c_.accumulate_steps;
}

void Training::setup() {
  device_ = resolve_device(c_.device);
  if (launch_.distributed()) {
    if (device_.is_cuda()) {
      // One GPU per process: the launcher's local rank.
      device_ = resolve_device("cuda:" + std::to_string(launch_.local_rank));
    }
    distributed_ = std::make_unique<Distributed>(
        launch_,
        device_,
        DistributedOptions{c_.dist_backend,
                           std::chrono::seconds(c_.dist_timeout)});
    log::info(log::cat("distributed: ",
                       world_size(),
                       " processes (",
                       launch_.launcher,
                       ", ",
                       distributed_->backend(),
                       "), batch ",
                       c_.batch_size,
                       " per process",
                       c_.accumulate_steps > 1
                           ? log::cat(" x ", c_.accumulate_steps, " steps")
                           : std::string(),
                       ", global batch ",
                       c_.batch_size * world_size() * c_.accumulate_steps,
                       ", lr ",
                       c_.lr));
  }
  if (c_.amp) {
    amp_dtype_ = amp_dtype_for(c_.amp_dtype, device_, log::warn);
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
  auto built = build_training_model(c_, classes);
  model_ = built.model;
  // The echo and checkpoints state the model trained: the width and padding
  // --pretrained chose.
  c_.width_mult = model_->options.width_mult();
  c_.padding = padding_name(model_->options.padding());
  model_->to(device_);
  if (c_.channels_last) {
    use_channels_last(*model_);
  }
  set_fused_batchnorm_enabled(c_.fused_batchnorm);
  info_ = {model_->options,
           train_set_.class_names,
           c_.img_size,
           c_.val_resize,
           c_.val_crop,
           built.normalization,
           built.resize};

  if (c_.qat) {
    qat_ = make_qat_state(model_, normalized_max_abs(info_.normalization));
    if (writer()) {
      log::info(
          log::cat("quantization-aware training: the int8 engine's "
                   "arithmetic simulated; BatchNorm statistics frozen "
                   "from epoch ",
                   c_.qat_freeze_bn_epoch + 1));
    }
  }

  OptimizerOptions opt;
  opt.kind = c_.optimizer;
  opt.momentum = c_.momentum;
  opt.nesterov = c_.nesterov;
  opt.eps = c_.opt_eps;
  optimizer_ = std::make_unique<Optimizer>(
      weight_decay_groups(*model_, c_.weight_decay, c_.norm_weight_decay), opt);
  scaler_ = std::make_unique<GradScaler>(
      device_, amp_dtype_ && *amp_dtype_ == torch::kHalf);

  auto train_options = loader_options(c_, true, device_.is_cuda(), launch_);
  train_options.normalization = info_.normalization;
  train_options.drop_last = train_set_.size() >= c_.batch_size;
  train_loader_ = std::make_unique<DataLoader>(train_set_, train_options);
  auto val_options = loader_options(c_, false, device_.is_cuda(), launch_);
  val_options.normalization = info_.normalization;
  val_options.eval_transform.policy = info_.resize;
  val_loader_ = std::make_unique<DataLoader>(val_set_, val_options);

  schedule_ = {c_.lr,
               c_.lr_scheduler,
               c_.lr_step_size,
               c_.lr_gamma,
               c_.lr_min,
               c_.warmup_epochs,
               c_.warmup_decay,
               c_.epochs,
               optimizer_steps_per_epoch()};
  if (c_.warmup_epochs > 0 && c_.warmup_epochs >= c_.epochs) {
    const auto last_step = c_.epochs * optimizer_steps_per_epoch() - 1;
    log::warn(log::cat("--warmup-epochs ",
                       c_.warmup_epochs,
                       " is not shorter than --epochs ",
                       c_.epochs,
                       ": the learning rate rises the whole run and ends at ",
                       schedule_.at(last_step),
                       ", below --lr ",
                       c_.lr));
  }
  const int64_t global_batch =
      c_.batch_size * world_size() * c_.accumulate_steps;
  if (c_.ema) {
    // torchvision adjusts the EMA decay by the images of one step, all ranks.
    ema_.emplace(model_, c_.ema_decay, c_.ema_steps, global_batch, c_.epochs);
  }
  log::info(log::cat(
      "MobileNetV2 width ",
      model_->options.width_mult(),
      model_->options.padding() == Padding::kTfSame ? " (TF SAME padding)" : "",
      ", ",
      classes,
      " classes, ",
      count_parameters(*model_),
      " parameters, ",
      count_multiply_adds(*model_, c_.img_size, c_.img_size) / 1e6,
      "M multiply-adds at ",
      c_.img_size));
  log::info(
      log::cat("data: ",
               train_set_.size(),
               " training images in '",
               train_set_.origin,
               train_set_.shards.empty()
                   ? "', "
                   : log::cat("' (", train_set_.shards.size(), " shards), "),
               val_set_.size(),
               " validation images in '",
               val_set_.origin,
               "'; training crops ",
               c_.img_size,
               ", validation resize ",
               c_.val_resize,
               " crop ",
               c_.val_crop));
  log::info(
      log::cat("recipe ",
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
               amp_dtype_ ? log::cat(", AMP ", *amp_dtype_) : std::string()));
}

Outcome Training::run() {
  // The programs refuse a bad command line first; this guards library use.
  const auto problems = c_.problems();
  if (!problems.empty()) {
    throw ConfigError(problems.front());
  }
  apply_max_image_pixels(c_.max_image_pixels);
  launch_ = detect_launch();
  if (launch_.distributed()) {
    // Processes on one machine share its cores unless told otherwise.
    const int share = std::max(
        1, default_thread_count() / std::max(1, launch_.local_world_size));
    c_.threads = c_.threads > 0 ? c_.threads : share;
    c_.workers = c_.workers > 0 ? c_.workers : share;
  }
  if (c_.resume.empty() && !c_.overwrite &&
      std::filesystem::exists(run_folder_.checkpoint)) {
    throw ConfigError("--output '" + c_.output + "' already holds a run (" +
                      run_folder_.checkpoint + "): --resume " +
                      run_folder_.checkpoint +
                      " continues it, --overwrite starts over");
  }
  int stale = 0;
  if (writer()) {
    stale = run_folder_.prepare();
    log::init(run_folder_.log);
  } else {
    log::init_secondary_rank(launch_.rank);
  }
  if (stale > 0) {
    log::info(log::cat("removed ",
                       stale,
                       " temporary file(s) a killed run left in ",
                       run_folder_.folder));
  }
  configure_runtime(c_.threads);
  // Threads follow the idle cores during the run too, unless the user chose
  // them, asked for reproducible runs, or ranks share the machine.
  threads_.emplace(c_.threads <= 0 && !c_.deterministic &&
                   !launch_.distributed());
  setup();
  log::info("config: " + to_json(c_));
  if (!c_.resume.empty()) {
    resume();
  }
  if (distributed_) {
    data_parallel_ = std::make_unique<DataParallel>(
        *model_,
        *distributed_,
        DataParallelOptions{1.0, c_.ddp_bucket_mb, c_.ddp_comm_hook});
  }
  saver_.emplace(run_folder_, progress_.best_top1, writer());
  install_stop_signal_handlers();
  // Rank 0 alone writes the run's files.
  if (writer()) {
    metrics_log_.emplace(run_folder_.metrics_jsonl,
                         run_folder_.metrics_csv,
                         progress_.epoch + 1);
    board_.emplace(c_.output);
  }
  for (int64_t epoch = progress_.epoch; epoch < c_.epochs; ++epoch) {
    EpochMetrics metrics;
    metrics.epoch = epoch + 1;
    const auto start = std::chrono::steady_clock::now();
    if (const int signal = train_epoch(epoch, metrics)) {
      save_checkpoint();
      if (writer()) {  // the one that saved
        log::warn(log::cat("stopped by signal ",
                           signal,
                           " in epoch ",
                           epoch + 1,
                           " after batch ",
                           progress_.batch_in_epoch,
                           "; checkpoint saved, continue with --resume ",
                           run_folder_.checkpoint));
      }
      return outcome_of_signal(signal);
    }
    validate(metrics);
    metrics.epoch_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count();
    progress_.epoch = epoch + 1;
    progress_.batch_in_epoch = 0;
    progress_.epoch_loss_sum = 0;
    save_best(metrics);
    save_checkpoint();
    if (writer()) {
      record_epoch(metrics, *metrics_log_, *board_);
    }
    log::info(epoch_summary(metrics));
    if (const int signal = agreed_stop_signal()) {
      return outcome_of_signal(signal);
    }
  }
  if (writer()) {
    write_curves_plot(metrics_log_->history(), run_folder_.curves);
  }
  log::info(log::cat("done: best val top-1 ",
                     fixed(progress_.best_top1, 2),
                     "%; weights in ",
                     run_folder_.best_weights));
  return Outcome::kDone;
}

Outcome run_training(TrainConfig config) {
  if (!config.write_shards.empty()) {
    apply_max_image_pixels(config.max_image_pixels);
    ShardWriteOptions options;
    options.pattern = config.write_shards;
    options.max_bytes = config.shard_max_mb * 1024 * 1024;
    options.max_side = static_cast<int>(config.shard_max_side);
    options.seed = config.seed;
    options.overwrite = config.overwrite;
    options.strict = config.strict_data;
    pack_into_shards(config.data, options);
    return Outcome::kDone;
  }
  return Training(std::move(config)).run();
}

}  // namespace mnv2
