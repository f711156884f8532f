#include "training_setup.h"

#include "checkpoint.h"
#include "errors.h"
#include "log.h"

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
    throw UsageError("--data '" + c.data + "' does not exist");
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
    throw UsageError("no validation data for '" + c.data +
                     "': pass --val-data or put a val/ folder beside train/");
  }
  auto train_set = open_dataset(train.string());
  auto val_set = open_dataset(val.string());
  if (train_set.class_names != val_set.class_names) {
    throw UsageError("the classes of '" + val_set.origin + "' (" +
                     std::to_string(val_set.class_names.size()) +
                     ") differ from those of '" + train_set.origin + "' (" +
                     std::to_string(train_set.class_names.size()) + ")");
  }
  return {std::move(train_set), std::move(val_set)};
}

void prepare_output_folder(const std::string& folder) {
  std::error_code ec;
  fs::create_directories(folder, ec);
  if (ec) {
    throw UsageError("--output '" + folder +
                     "' cannot be created: " + ec.message());
  }
  const auto probe = (fs::path(folder) / ".write-test").string();
  try {
    write_file_atomically(probe, "ok");
    fs::remove(probe, ec);
  } catch (const std::runtime_error& e) {
    throw UsageError("--output '" + folder + "' is not writable");
  }
}

MobileNetV2 build_training_model(const TrainConfig& c, int64_t num_classes) {
  MobileNetV2 model(MobileNetV2Options()
                        .num_classes(num_classes)
                        .width_mult(c.width_mult)
                        .dropout(c.dropout));
  if (!c.pretrained.empty()) {
    const auto weights = load_weights_file(c.pretrained, /*prefer_ema=*/true);
    if (weights.info.options.width_mult() != c.width_mult) {
      throw UsageError("--pretrained '" + c.pretrained + "' has width " +
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

void use_channels_last(torch::nn::Module& module) {
  torch::NoGradGuard no_grad;
  for (auto& p : module.parameters()) {
    if (p.dim() == 4) {
      p.set_data(p.data().contiguous(torch::MemoryFormat::ChannelsLast));
    }
  }
}

}  // namespace mnv2
