// mnv2-train: the flags (train_options.cpp) over a recipe, then the trainer.
#include "app_support.h"
#include "train/config/resumed_config.h"
#include "train/config/train_config.h"
#include "train/run/trainer.h"

int main(int argc, char** argv) {
  return mnv2::run_program("mnv2-train", [&] {
    const auto flags = mnv2::CommandLine<mnv2::TrainConfig>::parse(
        mnv2::train_flags(),
        "mnv2-train",
        "Train MobileNetV2 on an ImageFolder or list file. A --recipe sets "
        "every optimisation flag to published values; flags given explicitly "
        "override it. Defaults shown are the torchvision-v1 recipe's.",
        argc,
        argv);
    if (!flags) {
      return 0;
    }
    mnv2::TrainConfig config;
    flags->apply(config);  // to learn --recipe and --resume
    if (config.resume.empty()) {
      mnv2::apply_recipe(config, config.recipe);
      flags->apply(config);  // explicit flags override the recipe
      mnv2::follow_training_size(
          config, flags->given("val-resize"), flags->given("val-crop"));
    } else {
      // The run's own configuration, from its checkpoint, under the flags
      // given now.
      config = mnv2::resumed_config(
          config.resume, [&](mnv2::TrainConfig& c) { flags->apply(c); });
    }
    // With --pretrained the weights set the width unless it is given.
    config.width_from_pretrained = !flags->given("width-mult");
    mnv2::refuse_problems(config.problems());
    return mnv2::exit_status(mnv2::run_training(config));
  });
}
