// mnv2-train: parses flags into a TrainConfig and runs the trainer.
#include "app_support.h"
#include "errors.h"
#include "train_config.h"
#include "trainer.h"

#include <cxxopts.hpp>

#include <iostream>

namespace {

template <typename T>
void take(const cxxopts::ParseResult& flags,
          const std::string& name,
          T& field) {
  if (flags.count(name) != 0) {
    field = flags[name].as<T>();
  }
}

std::string str(double value) {
  std::ostringstream out;
  out << value;
  return out.str();
}

}  // namespace

int main(int argc, char** argv) {
  return mnv2::run_program("mnv2-train", [&] {
    const mnv2::TrainConfig d;  // defaults: the torchvision-v1 recipe
    std::string recipes;
    for (const auto& name : mnv2::recipe_names()) {
      recipes += (recipes.empty() ? "" : ", ") + name;
    }
    cxxopts::Options options(
        "mnv2-train",
        "Train MobileNetV2 on an ImageFolder or list file. A --recipe sets "
        "every optimisation flag to published values; flags given explicitly "
        "override it. Defaults shown are the torchvision-v1 recipe's.");
    options.add_options("Data")("data",
                                "training data: ImageFolder (or a folder with "
                                "train/ and val/) or list file",
                                cxxopts::value<std::string>())(
        "val-data",
        "validation data (default: val/ beside train/)",
        cxxopts::value<std::string>())(
        "output",
        "output folder for checkpoints, metrics and logs",
        cxxopts::value<std::string>())(
        "img-size",
        "training crop size",
        cxxopts::value<int64_t>()->default_value(std::to_string(d.img_size)))(
        "val-resize",
        "validation resize of the shorter side",
        cxxopts::value<int64_t>()->default_value(std::to_string(d.val_resize)))(
        "val-crop",
        "validation centre crop",
        cxxopts::value<int64_t>()->default_value(std::to_string(d.val_crop)))(
        "crop-scale-min",
        "RandomResizedCrop smallest area fraction",
        cxxopts::value<double>()->default_value(str(d.crop_scale_min)))(
        "hflip",
        "horizontal flip probability",
        cxxopts::value<double>()->default_value(str(d.hflip)))(
        "random-erase",
        "random erasing probability",
        cxxopts::value<double>()->default_value(str(d.random_erase)))(
        "trivial-augment",
        "TrivialAugmentWide (--trivial-augment=false to turn off)",
        cxxopts::value<bool>()
            ->default_value(d.trivial_augment ? "true" : "false")
            ->implicit_value("true"))(
        "strict-data", "stop on an unreadable image instead of skipping it")(
        "workers",
        "image decoding threads (0: all cores)",
        cxxopts::value<int>()->default_value("0"));
    options.add_options("Model")(
        "width-mult",
        "width multiplier",
        cxxopts::value<double>()->default_value(str(d.width_mult)))(
        "dropout",
        "dropout before the classifier",
        cxxopts::value<double>()->default_value(str(d.dropout)))(
        "pretrained",
        "initial weights (torchvision's published files work); a new head when "
        "the class count differs",
        cxxopts::value<std::string>())("freeze-features",
                                       "train the classifier only");
    options.add_options("Optimisation")(
        "recipe",
        "preset: " + recipes,
        cxxopts::value<std::string>()->default_value(d.recipe))(
        "epochs",
        "epochs",
        cxxopts::value<int64_t>()->default_value(std::to_string(d.epochs)))(
        "batch-size",
        "batch size",
        cxxopts::value<int64_t>()->default_value(std::to_string(d.batch_size)))(
        "optimizer",
        "sgd, rmsprop (TensorFlow form) or adamw",
        cxxopts::value<std::string>()->default_value(d.optimizer))(
        "lr",
        "learning rate",
        cxxopts::value<double>()->default_value(str(d.lr)))(
        "momentum",
        "momentum (SGD, RMSProp)",
        cxxopts::value<double>()->default_value(str(d.momentum)))(
        "nesterov", "Nesterov momentum (SGD)")(
        "opt-eps",
        "RMSProp/AdamW epsilon",
        cxxopts::value<double>()->default_value(str(d.opt_eps)))(
        "weight-decay",
        "weight decay",
        cxxopts::value<double>()->default_value(str(d.weight_decay)))(
        "norm-weight-decay",
        "weight decay of BN and bias parameters",
        cxxopts::value<double>()->default_value(str(d.norm_weight_decay)))(
        "lr-scheduler",
        "step, exponential or cosine",
        cxxopts::value<std::string>()->default_value(d.lr_scheduler))(
        "lr-step-size",
        "epochs per step decay",
        cxxopts::value<int64_t>()->default_value(
            std::to_string(d.lr_step_size)))(
        "lr-gamma",
        "step/exponential decay factor",
        cxxopts::value<double>()->default_value(str(d.lr_gamma)))(
        "lr-min",
        "cosine floor",
        cxxopts::value<double>()->default_value(str(d.lr_min)))(
        "warmup-epochs",
        "linear warmup epochs",
        cxxopts::value<int64_t>()->default_value(
            std::to_string(d.warmup_epochs)))(
        "warmup-decay",
        "warmup start factor",
        cxxopts::value<double>()->default_value(str(d.warmup_decay)))(
        "label-smoothing",
        "label smoothing",
        cxxopts::value<double>()->default_value(str(d.label_smoothing)))(
        "mixup-alpha",
        "mixup Beta alpha (0: off)",
        cxxopts::value<double>()->default_value(str(d.mixup_alpha)))(
        "cutmix-alpha",
        "cutmix Beta alpha (0: off)",
        cxxopts::value<double>()->default_value(str(d.cutmix_alpha)))(
        "clip-grad-norm",
        "gradient norm clipping (0: off)",
        cxxopts::value<double>()->default_value(str(d.clip_grad_norm)))(
        "ema",
        "keep an EMA of the weights (--ema=false to turn off)",
        cxxopts::value<bool>()
            ->default_value(d.ema ? "true" : "false")
            ->implicit_value("true"))(
        "ema-steps",
        "steps between EMA updates",
        cxxopts::value<int64_t>()->default_value(std::to_string(d.ema_steps)))(
        "ema-decay",
        "EMA decay (adjusted as torchvision's)",
        cxxopts::value<double>()->default_value(str(d.ema_decay)));
    options.add_options("Execution")(
        "device",
        "auto, cpu, cuda or cuda:N",
        cxxopts::value<std::string>()->default_value(d.device))(
        "amp", "automatic mixed precision")(
        "amp-dtype",
        "fp16 (with loss scaling) or bf16",
        cxxopts::value<std::string>()->default_value(d.amp_dtype))(
        "channels-last",
        "channels_last memory format (--channels-last=false to turn off)",
        cxxopts::value<bool>()->default_value("true")->implicit_value("true"))(
        "deterministic", "deterministic algorithms")(
        "seed", "random seed", cxxopts::value<uint64_t>()->default_value("0"))(
        "threads",
        "intra-op threads (0: all cores)",
        cxxopts::value<int>()->default_value("0"))(
        "resume",
        "continue from a checkpoint.pth",
        cxxopts::value<std::string>())(
        "log-interval",
        "steps between progress lines when not on a terminal",
        cxxopts::value<int64_t>()->default_value(
            std::to_string(d.log_interval)));
    const auto parsed = mnv2::parse_flags(options, argc, argv);
    if (!parsed) {
      return 0;
    }
    const auto& flags = *parsed;
    mnv2::TrainConfig c;
    mnv2::apply_recipe(c, flags["recipe"].as<std::string>());
    take(flags, "data", c.data);
    take(flags, "val-data", c.val_data);
    take(flags, "output", c.output);
    take(flags, "img-size", c.img_size);
    take(flags, "val-resize", c.val_resize);
    take(flags, "val-crop", c.val_crop);
    take(flags, "crop-scale-min", c.crop_scale_min);
    take(flags, "hflip", c.hflip);
    take(flags, "random-erase", c.random_erase);
    take(flags, "trivial-augment", c.trivial_augment);
    c.strict_data = flags.count("strict-data") != 0;
    take(flags, "workers", c.workers);
    take(flags, "width-mult", c.width_mult);
    take(flags, "dropout", c.dropout);
    take(flags, "pretrained", c.pretrained);
    c.freeze_features = flags.count("freeze-features") != 0;
    take(flags, "epochs", c.epochs);
    take(flags, "batch-size", c.batch_size);
    take(flags, "optimizer", c.optimizer);
    take(flags, "lr", c.lr);
    take(flags, "momentum", c.momentum);
    if (flags.count("nesterov") != 0) {
      c.nesterov = true;
    }
    take(flags, "opt-eps", c.opt_eps);
    take(flags, "weight-decay", c.weight_decay);
    take(flags, "norm-weight-decay", c.norm_weight_decay);
    take(flags, "lr-scheduler", c.lr_scheduler);
    take(flags, "lr-step-size", c.lr_step_size);
    take(flags, "lr-gamma", c.lr_gamma);
    take(flags, "lr-min", c.lr_min);
    take(flags, "warmup-epochs", c.warmup_epochs);
    take(flags, "warmup-decay", c.warmup_decay);
    take(flags, "label-smoothing", c.label_smoothing);
    take(flags, "mixup-alpha", c.mixup_alpha);
    take(flags, "cutmix-alpha", c.cutmix_alpha);
    take(flags, "clip-grad-norm", c.clip_grad_norm);
    take(flags, "ema", c.ema);
    take(flags, "ema-steps", c.ema_steps);
    take(flags, "ema-decay", c.ema_decay);
    take(flags, "device", c.device);
    c.amp = flags.count("amp") != 0;
    take(flags, "amp-dtype", c.amp_dtype);
    take(flags, "channels-last", c.channels_last);
    c.deterministic = flags.count("deterministic") != 0;
    take(flags, "seed", c.seed);
    take(flags, "threads", c.threads);
    take(flags, "resume", c.resume);
    take(flags, "log-interval", c.log_interval);
    return mnv2::run_training(c);
  });
}
