#include "train/training_setup.h"

#include "common/checkpoint.h"
#include "common/errors.h"
#include "common/log.h"

#include <mobilenetv2/atomic_file.h>
#include <mobilenetv2/weights_io.h>

#include <torch/torch.h>

#include <filesystem>

namespace fs = std::filesystem;

namespace mnv2 {

std::pair<Dataset, Dataset> open_train_and_val(const TrainConfig& c) {
  const fs::path data(c.data);
  std::error_code ec;
  if (!fs::exists(data, ec)) {
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

MobileNetV2 build_training_model(const TrainConfig& c, int64_t num_classes) {
  MobileNetV2 model(MobileNetV2Options()
                        .num_classes(num_classes)
                        .width_mult(c.width_mult)
                        .dropout(c.dropout));
  if (!c.pretrained.empty()) {
    const auto weights = load_weights_file(c.pretrained, /*prefer_ema=*/true);
    if (weights.info.options.width_mult() != c.width_mult) {
      throw ConfigError("--pretrained '" + c.pretrained + "' has width " +
                        std::to_string(weights.info.options.width_mult()) +
                        " but --width-mult is " + std::to_string(c.width_mult));
    }
    const auto report =
        load_weights(*model, weights.state, LoadMode::kNonStrict, c.pretrained);
    log::info(log::cat("pretrained weights from ",
                       c.pretrained,
                       ": ",
                       report.exact() ? "all layers loaded"
                                      : "not loaded: " + report.summary()));
  }
  if (c.freeze_features) {
    for (auto& p : model->features->parameters()) {
      p.set_requires_grad(false);
    }
  }
  return model;
}

}  // namespace mnv2
