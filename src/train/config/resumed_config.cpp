#include "train/config/resumed_config.h"

#include <mobilenetv2/weights/checkpoint.h>
#include "common/errors.h"
#include "common/log.h"

#include <nlohmann/json.hpp>

namespace mnv2 {

TrainConfig resumed_config(
    const std::string& checkpoint,
    const std::function<void(TrainConfig&)>& apply_given) {
  const auto stored_json = read_checkpoint(checkpoint).config_json;
  if (stored_json.empty()) {
    log::warn(log::cat("--resume '",
                       checkpoint,
                       "' holds no configuration: the run continues with "
                       "the flags given now"));
    TrainConfig config;
    apply_given(config);  // learns --recipe
    apply_recipe(config, config.recipe);
    apply_given(config);
    return config;
  }
  TrainConfig stored;
  try {
    config_from_json(train_flags(), nlohmann::json::parse(stored_json), stored);
  } catch (const nlohmann::json::exception& e) {
    throw ConfigError(log::cat("--resume '",
                               checkpoint,
                               "': its stored configuration is unreadable (",
                               e.what(),
                               ")"));
  }
  TrainConfig resumed = stored;
  apply_given(resumed);
  if (resumed.recipe != stored.recipe) {
    apply_recipe(resumed, resumed.recipe);
    apply_given(resumed);
  }
  for (const auto& change : changed_flags(train_flags(), stored, resumed)) {
    log::warn(log::cat("--resume: ",
                       change,
                       " (the checkpoint's value -> the one given now)"));
  }
  return resumed;
}

}  // namespace mnv2
