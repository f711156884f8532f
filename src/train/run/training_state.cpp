// The training state in and out of checkpoint.pth: resume and save.
#include "train/run/training.h"

#include <mobilenetv2/torch_files/load_weights.h>
#include <mobilenetv2/weights/checkpoint.h>
#include "common/errors.h"
#include "common/log.h"
#include "train/outputs/checkpoint_saver.h"
#include "train/step/ema.h"
#include "train/step/grad_scaler.h"
#include "train/step/optimizer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

namespace mnv2 {

void Training::resume() {
  const auto cp = read_checkpoint(c_.resume);
  if (cp.info.class_names != info_.class_names ||
      cp.info.options.width_mult() != info_.options.width_mult()) {
    throw ConfigError(log::cat("--resume '",
                               c_.resume,
                               "' was trained on other classes or another "
                               "width (",
                               cp.info.options.width_mult(),
                               " vs ",
                               info_.options.width_mult(),
                               "): resume with the flags the run began with "
                               "(--pretrained, --width-mult)"));
  }
  if (cp.info.options.padding() != info_.options.padding() ||
      cp.info.options.bn_eps() != info_.options.bn_eps() ||
      cp.info.normalization != info_.normalization ||
      cp.info.resize != info_.resize) {
    throw ConfigError("--resume '" + c_.resume + "' was trained with " +
                      padding_name(cp.info.options.padding()) +
                      " padding and its own preprocessing: resume with the "
                      "same --pretrained and --padding as the run began");
  }
  load_weights(*model_, cp.model, LoadMode::kStrict, c_.resume);
  if (ema_ && cp.model_ema) {
    load_weights(*ema_->model(), *cp.model_ema, LoadMode::kStrict, c_.resume);
  }
  if (qat_ && cp.qat) {
    qat_->ranges = cp.qat->ranges.clone();
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
  if (progress_.world_size != world_size()) {
    // Shards and step counts depend on the world size: an epoch the other
    // world had started restarts, and the schedule follows this world's steps.
    if (progress_.batch_in_epoch > 0) {
      log::warn(log::cat("--resume: the checkpoint was written by ",
                         progress_.world_size,
                         " process(es) in the middle of epoch ",
                         progress_.epoch + 1,
                         "; with ",
                         world_size(),
                         " that epoch restarts"));
    }
    progress_.batch_in_epoch = 0;
    progress_.epoch_loss_sum = 0;
    progress_.global_step = progress_.epoch * optimizer_steps_per_epoch();
    progress_.world_size = world_size();
  }
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
  cp.progress.world_size = world_size();
  cp.info = info_;
  cp.config_json = to_json(c_);
  cp.qat = qat_;
  saver_->save_checkpoint(cp);
  if (!run_files_taken_over_) {
    take_over_run_files();
  }
}

void Training::take_over_run_files() {
  run_files_taken_over_ = true;
  if (!writer() || !metrics_log_) {
    return;
  }
  metrics_log_->start();
  if (c_.resume.empty()) {
    run_folder_.remove_previous_run(board_->path(), saver_->wrote_best());
  }
}

}  // namespace mnv2
