#include "train_config.h"

#include <nlohmann/json.hpp>

#include <stdexcept>

namespace mnv2 {

std::vector<std::string> recipe_names() {
  return {"torchvision-v1", "torchvision-v2", "paper", "digits"};
}

void apply_recipe(TrainConfig& c, const std::string& name) {
  c.recipe = name;
  if (name == "torchvision-v1") {
    // torchvision's MobileNet_V2_Weights.IMAGENET1K_V1 (71.878% top-1).
    c.optimizer = "sgd";
    c.lr = 0.045;
    c.momentum = 0.9;
    c.weight_decay = 4e-5;
    c.lr_scheduler = "step";
    c.lr_step_size = 1;
    c.lr_gamma = 0.98;
    c.epochs = 300;
    c.batch_size = 32;
  } else if (name == "torchvision-v2") {
    // IMAGENET1K_V2 (72.154% top-1), torchvision's "new recipe".
    c.optimizer = "sgd";
    c.lr = 0.5;
    c.momentum = 0.9;
    c.weight_decay = 2e-5;
    c.norm_weight_decay = 0.0;
    c.lr_scheduler = "cosine";
    c.warmup_epochs = 5;
    c.warmup_decay = 0.01;
    c.label_smoothing = 0.1;
    c.mixup_alpha = 0.2;
    c.cutmix_alpha = 1.0;
    c.random_erase = 0.1;
    c.trivial_augment = true;
    c.ema = true;
    c.ema_steps = 32;
    c.ema_decay = 0.99998;
    c.epochs = 600;
    c.batch_size = 128;
    c.img_size = 176;
    c.val_resize = 232;
    c.val_crop = 224;
  } else if (name == "paper") {
    // Sandler et al. 2018: RMSProp (decay 0.9, momentum 0.9), lr 0.045
    // decayed by 0.98 per epoch, weight decay 4e-5, plus label smoothing and
    // an EMA of the weights as in the TensorFlow reference training.
    c.optimizer = "rmsprop";
    c.lr = 0.045;
    c.momentum = 0.9;
    c.opt_eps = 1e-3;
    c.weight_decay = 4e-5;
    c.lr_scheduler = "exponential";
    c.lr_gamma = 0.98;
    c.label_smoothing = 0.1;
    c.ema = true;
    c.ema_decay = 0.9999;
    c.ema_steps = 1;
    c.epochs = 300;
    c.batch_size = 96;
  } else if (name == "digits") {
    // The embedded default data: 8x8 digits upscaled to 48x48 (a 2x2 final
    // feature map); no flips (a mirrored digit is another glyph) and mild
    // crops. Reaches 97%+ val top-1 in about a minute on 2 CPU cores.
    c.optimizer = "sgd";
    c.nesterov = true;
    c.lr = 0.05;
    c.momentum = 0.9;
    c.weight_decay = 5e-5;
    c.lr_scheduler = "cosine";
    c.warmup_epochs = 2;
    c.label_smoothing = 0.1;
    c.clip_grad_norm = 5.0;
    c.epochs = 20;
    c.batch_size = 64;
    c.img_size = 48;
    c.val_resize = 48;
    c.val_crop = 48;
    c.crop_scale_min = 0.6;
    c.hflip = 0.0;
    c.width_mult = 0.5;
    c.dropout = 0.1;
  } else {
    throw std::invalid_argument("--recipe: unknown recipe '" + name + "'");
  }
}

std::vector<std::string> TrainConfig::problems() const {
  std::vector<std::string> out;
  auto need = [&](bool ok, const std::string& message) {
    if (!ok) {
      out.push_back(message);
    }
  };
  need(!data.empty(), "--data is required");
  need(!output.empty(), "--output is required");
  need(epochs >= 1, "--epochs must be at least 1");
  need(batch_size >= 1, "--batch-size must be at least 1");
  need(img_size >= 16 && img_size <= 4096, "--img-size must be in [16, 4096]");
  need(val_crop >= 16 && val_resize >= val_crop,
       "--val-resize must be >= --val-crop >= 16");
  need(width_mult > 0 && width_mult <= 4, "--width-mult must be in (0, 4]");
  need(lr > 0, "--lr must be positive");
  need(optimizer == "sgd" || optimizer == "rmsprop" || optimizer == "adamw",
       "--optimizer must be sgd, rmsprop or adamw");
  need(lr_scheduler == "step" || lr_scheduler == "exponential" ||
           lr_scheduler == "cosine",
       "--lr-scheduler must be step, exponential or cosine");
  need(amp_dtype == "fp16" || amp_dtype == "bf16",
       "--amp-dtype must be fp16 or bf16");
  need(crop_scale_min > 0 && crop_scale_min <= 1,
       "--crop-scale-min must be in (0, 1]");
  need(hflip >= 0 && hflip <= 1, "--hflip must be in [0, 1]");
  need(random_erase >= 0 && random_erase <= 1,
       "--random-erase must be in [0, 1]");
  need(label_smoothing >= 0 && label_smoothing < 1,
       "--label-smoothing must be in [0, 1)");
  need(mixup_alpha >= 0 && cutmix_alpha >= 0,
       "--mixup-alpha and --cutmix-alpha must be >= 0");
  need(ema_steps >= 1 && ema_decay > 0 && ema_decay < 1,
       "--ema-steps must be >= 1 and --ema-decay in (0, 1)");
  need(warmup_epochs >= 0, "--warmup-epochs must be >= 0");
  need(dropout >= 0 && dropout < 1, "--dropout must be in [0, 1)");
  need(log_interval >= 1, "--log-interval must be at least 1");
  return out;
}

std::string to_json(const TrainConfig& c) {
  nlohmann::json j = {{"data", c.data},
                      {"val_data", c.val_data},
                      {"output", c.output},
                      {"img_size", c.img_size},
                      {"val_resize", c.val_resize},
                      {"val_crop", c.val_crop},
                      {"crop_scale_min", c.crop_scale_min},
                      {"hflip", c.hflip},
                      {"random_erase", c.random_erase},
                      {"trivial_augment", c.trivial_augment},
                      {"width_mult", c.width_mult},
                      {"dropout", c.dropout},
                      {"pretrained", c.pretrained},
                      {"freeze_features", c.freeze_features},
                      {"recipe", c.recipe},
                      {"epochs", c.epochs},
                      {"batch_size", c.batch_size},
                      {"optimizer", c.optimizer},
                      {"lr", c.lr},
                      {"momentum", c.momentum},
                      {"nesterov", c.nesterov},
                      {"opt_eps", c.opt_eps},
                      {"weight_decay", c.weight_decay},
                      {"norm_weight_decay", c.norm_weight_decay},
                      {"lr_scheduler", c.lr_scheduler},
                      {"lr_step_size", c.lr_step_size},
                      {"lr_gamma", c.lr_gamma},
                      {"lr_min", c.lr_min},
                      {"warmup_epochs", c.warmup_epochs},
                      {"warmup_decay", c.warmup_decay},
                      {"label_smoothing", c.label_smoothing},
                      {"mixup_alpha", c.mixup_alpha},
                      {"cutmix_alpha", c.cutmix_alpha},
                      {"clip_grad_norm", c.clip_grad_norm},
                      {"ema", c.ema},
                      {"ema_steps", c.ema_steps},
                      {"ema_decay", c.ema_decay},
                      {"device", c.device},
                      {"amp", c.amp},
                      {"amp_dtype", c.amp_dtype},
                      {"channels_last", c.channels_last},
                      {"deterministic", c.deterministic},
                      {"seed", c.seed},
                      {"threads", c.threads}};
  return j.dump();
}

}  // namespace mnv2
