#include "train/config/train_config.h"

namespace mnv2 {

std::vector<std::string> recipe_names() {
  return {"torchvision-v1", "torchvision-v2", "paper", "digits"};
}

bool apply_recipe(TrainConfig& c, const std::string& name) {
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
    return false;
  }
  c.recipe = name;
  return true;
}

}  // namespace mnv2
