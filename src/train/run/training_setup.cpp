#include "train/run/training_setup.h"

#include <mobilenetv2/classifier/weights_file.h>
#include <mobilenetv2/weights/checkpoint.h>
#include "common/errors.h"
#include "common/log.h"
#include "data/shard_spec.h"

#include <mobilenetv2/torch_files/load_weights.h>
#include <mobilenetv2/util/atomic_file.h>

#include <torch/torch.h>

#include <filesystem>
#include <optional>

namespace fs = std::filesystem;

namespace mnv2 {

std::pair<Dataset, Dataset> open_train_and_val(const TrainConfig& c) {
  const fs::path data(c.data);
  std::error_code ec;
  if (names_shards(c.data) && !fs::is_directory(data / "train", ec)) {
    if (c.val_data.empty()) {
      throw ConfigError("--data '" + c.data +
                        "' names shards: pass --val-data (shards or files)");
    }
  } else if (!fs::exists(data, ec)) {
    throw ConfigError("--data '" + c.data + "' does not exist");
  }
  if (fs::is_directory(data, ec) && fs::is_empty(data, ec)) {
    throw ConfigError("--data '" + c.data + "' is an empty folder");
  }
  fs::path train = data;
  fs::path val = c.val_data;
  if (fs::is_directory(data / "train", ec)) {
    train = data / "train";
    if (val.empty() && fs::is_directory(data / "val", ec)) {
      val = data / "val";
    }
  } else if (val.empty() && data.filename() == "train" &&
             fs::is_directory(data.parent_path() / "val", ec)) {
    val = data.parent_path() / "val";
  }
  if (val.empty()) {
    throw ConfigError("no validation data for '" + c.data +
                      "': pass --val-data or put a val/ folder beside train/");
  }
  auto train_set = open_dataset(train.string());
  if (train_set.class_names.size() < 2) {
    throw ConfigError("--data '" + c.data + "' has a single class ('" +
                      train_set.class_names.front() +
                      "'): a classifier needs at least two");
  }
  auto val_set = open_dataset(val.string());
  if (train_set.class_names != val_set.class_names) {
    throw ConfigError("the classes of '" + val_set.origin + "' (" +
                      std::to_string(val_set.class_names.size()) +
                      ") differ from those of '" + train_set.origin + "' (" +
                      std::to_string(train_set.class_names.size()) + ")");
  }
  return {std::move(train_set), std::move(val_set)};
}

TrainingModel build_training_model(const TrainConfig& c, int64_t num_classes) {
  auto options = MobileNetV2Options()
                     .num_classes(num_classes)
                     .width_mult(c.width_mult)
                     .dropout(c.dropout);
  if (c.padding != "auto") {
    options.padding(padding_from_name(c.padding));
  }
  std::optional<LoadedWeights> weights;
  Normalization normalization;
  auto resize = ResizePolicy::kShorterSideCenterCrop;
  if (!c.pretrained.empty()) {
    weights = load_any_weights_file(c.pretrained, /*prefer_ema=*/true);
    const auto& theirs = weights->info.options;
    if (c.width_from_pretrained) {
      options.width_mult(theirs.width_mult());
    } else if (theirs.width_mult() != c.width_mult) {
      throw ConfigError("--pretrained '" + c.pretrained + "' has width " +
                        std::to_string(theirs.width_mult()) +
                        " but --width-mult is " + std::to_string(c.width_mult));
    }
    if (c.padding != "auto" && theirs.padding() != options.padding()) {
      throw ConfigError("--pretrained '" + c.pretrained +
                        "' was trained with " + padding_name(theirs.padding()) +
                        " padding but --padding is " + c.padding);
    }
    options.padding(theirs.padding()).bn_eps(theirs.bn_eps());
    normalization = weights->info.normalization;
    resize = weights->info.resize;
  }
  TrainingModel out{MobileNetV2(options), normalization, resize};
  if (weights) {
    if (!weights->conversion.empty()) {
      log::info(log::cat("--pretrained: ", weights->conversion));
    }
    for (const auto& assumed : weights->warnings) {
      log::info(log::cat("--pretrained: ", assumed));
    }
    const auto report = load_weights(
        *out.model, weights->state, LoadMode::kNonStrict, c.pretrained);
    log::info(log::cat("pretrained weights from ",
                       c.pretrained,
                       ": ",
                       report.exact() ? "all layers loaded"
                                      : "not loaded: " + report.summary()));
  }
  if (c.freeze_features) {
    for (auto& p : out.model->features->parameters()) {
      p.set_requires_grad(false);
    }
  }
  return out;
}

}  // namespace mnv2
