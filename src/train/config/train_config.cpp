#include "train/config/train_config.h"

#include <algorithm>
#include <cmath>

namespace mnv2 {

void follow_training_size(TrainConfig& config,
                          bool resize_given,
                          bool crop_given) {
  TrainConfig recipe;
  apply_recipe(recipe, config.recipe);
  if (config.img_size == recipe.img_size) {
    return;
  }
  const double ratio = static_cast<double>(config.img_size) /
                       static_cast<double>(recipe.img_size);
  const auto scaled = [&](int64_t size) {
    return static_cast<int64_t>(std::lround(static_cast<double>(size) * ratio));
  };
  if (!crop_given) {
    config.val_crop = scaled(recipe.val_crop);
  }
  if (!resize_given) {
    config.val_resize = std::max(scaled(recipe.val_resize), config.val_crop);
  }
}

std::vector<std::string> TrainConfig::problems() const {
  Problems p;
  const auto recipes = recipe_names();
  p.need(std::find(recipes.begin(), recipes.end(), recipe) != recipes.end(),
         "--recipe: unknown recipe '" + recipe + "'");
  p.need(!data.empty(), "--data is required");
  p.need(!output.empty() || !write_shards.empty(), "--output is required");
  p.need(shuffle_buffer >= 1 && shuffle_buffer <= 1000000,
         "--shuffle-buffer must be in [1, 1000000]");
  p.need(shard_max_mb >= 1 && shard_max_mb <= 1000000,
         "--shard-max-mb must be in [1, 1000000]");
  p.need(shard_max_side >= 0 && shard_max_side <= 65535,
         "--shard-max-side must be in [0, 65535]");
  p.need(epochs >= 1, "--epochs must be at least 1");
  p.need(max_image_pixels >= 1, "--max-image-pixels must be at least 1");
  p.need(batch_size >= 1, "--batch-size must be at least 1");
  p.need(img_size >= 16 && img_size <= 4096,
         "--img-size must be in [16, 4096]");
  p.need(val_crop >= 16 && val_resize >= val_crop,
         "--val-resize must be >= --val-crop >= 16");
  p.need(width_mult > 0 && width_mult <= 4, "--width-mult must be in (0, 4]");
  p.need(padding == "auto" || padding == "torch" || padding == "tf_same",
         "--padding must be auto, torch or tf_same");
  // Upper bounds, so that no value allocates without limit.
  p.need(epochs <= 100000, "--epochs must be at most 100000");
  p.need(batch_size <= 65536, "--batch-size must be at most 65536");
  p.need(val_resize <= 4096, "--val-resize must be at most 4096");
  p.need(threads >= 0 && threads <= 1024 && workers >= 0 && workers <= 1024,
         "--threads and --workers must be in [0, 1024] (0: all cores)");
  p.need(lr > 0, "--lr must be positive");
  p.need(optimizer == "sgd" || optimizer == "rmsprop" || optimizer == "adamw",
         "--optimizer must be sgd, rmsprop or adamw");
  p.need(lr_scheduler == "step" || lr_scheduler == "exponential" ||
             lr_scheduler == "cosine",
         "--lr-scheduler must be step, exponential or cosine");
  p.need(amp_dtype == "auto" || amp_dtype == "fp16" || amp_dtype == "bf16",
         "--amp-dtype must be auto, fp16 or bf16");
  p.need(crop_scale_min > 0 && crop_scale_min <= 1,
         "--crop-scale-min must be in (0, 1]");
  p.need(hflip >= 0 && hflip <= 1, "--hflip must be in [0, 1]");
  p.need(random_erase >= 0 && random_erase <= 1,
         "--random-erase must be in [0, 1]");
  p.need(label_smoothing >= 0 && label_smoothing < 1,
         "--label-smoothing must be in [0, 1)");
  p.need(mixup_alpha >= 0 && cutmix_alpha >= 0,
         "--mixup-alpha and --cutmix-alpha must be >= 0");
  p.need(ema_steps >= 1 && ema_decay > 0 && ema_decay < 1,
         "--ema-steps must be >= 1 and --ema-decay in (0, 1)");
  p.need(warmup_epochs >= 0, "--warmup-epochs must be >= 0");
  p.need(dropout >= 0 && dropout < 1, "--dropout must be in [0, 1)");
  p.need(log_interval >= 1, "--log-interval must be at least 1");
  p.need(accumulate_steps >= 1 && accumulate_steps <= 1024,
         "--accumulate-steps must be in [1, 1024]");
  p.need(
      dist_backend == "auto" || dist_backend == "nccl" || dist_backend == "mpi",
      "--dist-backend must be auto, nccl or mpi");
  p.need(dist_timeout >= 1, "--dist-timeout must be at least 1 second");
  p.need(ddp_bucket_mb > 0 && ddp_bucket_mb <= 1024,
         "--ddp-bucket-mb must be in (0, 1024]");
  p.need(ddp_comm_hook == "none" || ddp_comm_hook == "fp16" ||
             ddp_comm_hook == "bf16",
         "--ddp-comm-hook must be none, fp16 or bf16");
  p.need(qat_freeze_bn_epoch >= 0 && qat_freeze_bn_epoch <= 100000,
         "--qat-freeze-bn-epoch must be in [0, 100000]");
  p.need(!qat || !amp,
         "--qat computes in fp32, as the int8 engine's scales do: drop --amp");
  p.need(!qat || !pretrained.empty() || !resume.empty(),
         "--qat fine-tunes trained weights: give them with --pretrained");
  // MobileNetV2 downsamples 32x: batch 1 at 32 px or less leaves BatchNorm a
  // single value per channel in its last layers, which training cannot use.
  const int64_t last_side = (img_size + 31) / 32;
  p.need(batch_size * last_side * last_side >= 2 || batch_size < 1,
         "--batch-size " + std::to_string(batch_size) + " at --img-size " +
             std::to_string(img_size) +
             " leaves BatchNorm one value per channel in the last layers; "
             "use --batch-size 2 or more");
  return std::move(p).list();
}

}  // namespace mnv2
