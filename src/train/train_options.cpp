#include "train/train_config.h"

namespace mnv2 {

namespace {

std::string joined_recipe_names() {
  std::string out;
  for (const auto& name : recipe_names()) {
    out += (out.empty() ? "" : ", ") + name;
  }
  return out;
}

FlagTable<TrainConfig> make_train_flags() {
  using C = TrainConfig;
  const auto kSwitch = FlagKind::kSwitch;
  const auto kToggle = FlagKind::kToggle;
  return {
      // Data
      {"data", "Data",
       "training data: ImageFolder (or a folder with train/ and val/) or list "
       "file",
       &C::data, "data"},
      {"val-data", "Data", "validation data (default: val/ beside train/)",
       &C::val_data, "val_data"},
      {"output", "Data", "output folder for checkpoints, metrics and logs",
       &C::output, "output"},
      {"img-size", "Data", "training crop size", &C::img_size, "img_size"},
      {"val-resize", "Data", "validation resize of the shorter side",
       &C::val_resize, "val_resize"},
      {"val-crop", "Data", "validation centre crop", &C::val_crop, "val_crop"},
      {"crop-scale-min", "Data", "RandomResizedCrop smallest area fraction",
       &C::crop_scale_min, "crop_scale_min"},
      {"hflip", "Data", "horizontal flip probability", &C::hflip, "hflip"},
      {"random-erase", "Data", "random erasing probability", &C::random_erase,
       "random_erase"},
      {"trivial-augment", "Data",
       "TrivialAugmentWide (--trivial-augment=false to turn off)",
       &C::trivial_augment, "trivial_augment", kToggle},
      {"strict-data", "Data",
       "stop on an unreadable image instead of skipping it", &C::strict_data,
       "", kSwitch},
      {"workers", "Data", "image decoding threads (0: all cores)", &C::workers,
       ""},
      // Model
      {"width-mult", "Model", "width multiplier", &C::width_mult,
       "width_mult"},
      {"dropout", "Model", "dropout before the classifier", &C::dropout,
       "dropout"},
      {"pretrained", "Model",
       "initial weights (torchvision's published files work); a new head when "
       "the class count differs",
       &C::pretrained, "pretrained"},
      {"freeze-features", "Model", "train the classifier only",
       &C::freeze_features, "freeze_features", kSwitch},
      // Optimisation
      {"recipe", "Optimisation", "preset: " + joined_recipe_names(),
       &C::recipe, "recipe"},
      {"epochs", "Optimisation", "epochs", &C::epochs, "epochs"},
      {"batch-size", "Optimisation", "batch size", &C::batch_size,
       "batch_size"},
      {"optimizer", "Optimisation", "sgd, rmsprop (TensorFlow form) or adamw",
       &C::optimizer, "optimizer"},
      {"lr", "Optimisation", "learning rate", &C::lr, "lr"},
      {"momentum", "Optimisation", "momentum (SGD, RMSProp)", &C::momentum,
       "momentum"},
      {"nesterov", "Optimisation", "Nesterov momentum (SGD)", &C::nesterov,
       "nesterov", kSwitch},
      {"opt-eps", "Optimisation", "RMSProp/AdamW epsilon", &C::opt_eps,
       "opt_eps"},
      {"weight-decay", "Optimisation", "weight decay", &C::weight_decay,
       "weight_decay"},
      {"norm-weight-decay", "Optimisation",
       "weight decay of BN and bias parameters", &C::norm_weight_decay,
       "norm_weight_decay"},
      {"lr-scheduler", "Optimisation", "step, exponential or cosine",
       &C::lr_scheduler, "lr_scheduler"},
      {"lr-step-size", "Optimisation", "epochs per step decay",
       &C::lr_step_size, "lr_step_size"},
      {"lr-gamma", "Optimisation", "step/exponential decay factor",
       &C::lr_gamma, "lr_gamma"},
      {"lr-min", "Optimisation", "cosine floor", &C::lr_min, "lr_min"},
      {"warmup-epochs", "Optimisation", "linear warmup epochs",
       &C::warmup_epochs, "warmup_epochs"},
      {"warmup-decay", "Optimisation", "warmup start factor",
       &C::warmup_decay, "warmup_decay"},
      {"label-smoothing", "Optimisation", "label smoothing",
       &C::label_smoothing, "label_smoothing"},
      {"mixup-alpha", "Optimisation", "mixup Beta alpha (0: off)",
       &C::mixup_alpha, "mixup_alpha"},
      {"cutmix-alpha", "Optimisation", "cutmix Beta alpha (0: off)",
       &C::cutmix_alpha, "cutmix_alpha"},
      {"clip-grad-norm", "Optimisation", "gradient norm clipping (0: off)",
       &C::clip_grad_norm, "clip_grad_norm"},
      {"ema", "Optimisation",
       "keep an EMA of the weights (--ema=false to turn off)", &C::ema, "ema",
       kToggle},
      {"ema-steps", "Optimisation", "steps between EMA updates",
       &C::ema_steps, "ema_steps"},
      {"ema-decay", "Optimisation", "EMA decay (adjusted as torchvision's)",
       &C::ema_decay, "ema_decay"},
      // Execution
      {"device", "Execution", "auto, cpu, cuda or cuda:N", &C::device,
       "device"},
      {"amp", "Execution", "automatic mixed precision", &C::amp, "amp",
       kSwitch},
      {"amp-dtype", "Execution", "fp16 (with loss scaling) or bf16",
       &C::amp_dtype, "amp_dtype"},
      {"channels-last", "Execution",
       "channels_last memory format (--channels-last=false to turn off)",
       &C::channels_last, "channels_last", kToggle},
      {"deterministic", "Execution", "deterministic algorithms",
       &C::deterministic, "deterministic", kSwitch},
      {"seed", "Execution", "random seed", &C::seed, "seed"},
      {"threads", "Execution", "intra-op threads (0: all cores)", &C::threads,
       "threads"},
      {"resume", "Execution", "continue from a checkpoint.pth", &C::resume,
       ""},
      {"log-interval", "Execution",
       "steps between progress lines when not on a terminal",
       &C::log_interval, ""},
  };
}

}  // namespace

const FlagTable<TrainConfig>& train_flags() {
  static const auto table = make_train_flags();
  return table;
}

std::string to_json(const TrainConfig& config) {
  return config_json(train_flags(), config).dump();
}

}  // namespace mnv2
