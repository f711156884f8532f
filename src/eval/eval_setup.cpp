#include "eval/eval_setup.h"

#include "common/errors.h"
#include "common/log.h"
#include "common/runtime.h"
#include "data/dataset.h"

#include <torch/torch.h>

#include <filesystem>
#include <stdexcept>

namespace mnv2 {

namespace {

constexpr size_t kImageNetClasses = 1000;

// Plain 1000-class weights (e.g. torchvision's) number their classes:
// ImageNet's names come from data/ of the checkout the program was built in.
std::vector<std::string> imagenet_names_if_numbered(
    const std::vector<std::string>& names) {
  if (names.size() != kImageNetClasses || names.front() != "0") {
    return {};
  }
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  const auto list =
      exe.parent_path() / ".." / ".." / "data" / "imagenet_classes.txt";
  if (ec || !std::filesystem::exists(list)) {
    return {};
  }
  return read_class_names(list.string());
}

// What reading the weights converted (info) and assumed (warnings).
void log_weights_notes(const std::string& path, const InferenceModel& model) {
  if (!model.conversion().empty()) {
    log::info(log::cat(path, ": ", model.conversion()));
  }
  for (const auto& warning : model.warnings()) {
    log::warn(log::cat(path, ": ", warning));
  }
}

// An int8 file computes in int8: a 16-bit type asked for is not used.
void warn_unused_dtypes(const EvalCommand& c, const InferenceModel& model) {
  if (model.quantized() == nullptr) {
    return;
  }
  const auto is_int8 = [](const std::string& d) { return d == "int8"; };
  if (!c.amp_dtype.empty() && c.amp_dtype != "fp32") {
    log::warn("--amp-dtype " + c.amp_dtype + " is not used: '" + c.weights +
              "' is an int8 file, which computes in int8");
  }
  if (!c.dtypes.empty() &&
      !std::all_of(c.dtypes.begin(), c.dtypes.end(), is_int8)) {
    log::warn("--dtypes is not used: '" + c.weights +
              "' is an int8 file, which is measured in int8 only");
  }
}

}  // namespace

std::optional<c10::ScalarType> amp_dtype_of(const std::string& name,
                                            const torch::Device& device) {
  if (name.empty() || name == "fp32") {
    return std::nullopt;
  }
  if (name == "bf16" || name == "fp16") {
    return amp_dtype_for(name, device, log::warn);
  }
  throw ConfigError("--amp-dtype must be fp32, bf16 or fp16, got '" + name +
                    "'");
}

Prepared prepare(const EvalCommand& c) {
  configure_runtime(c.threads);
  Prepared p{resolve_device(c.device), {}};
  p.model =
      InferenceModel::load(c.weights, c.ema, p.device, c.allow_non_finite);
  log_weights_notes(c.weights, p.model);
  warn_unused_dtypes(c, p.model);
  if (c.channels_last) {
    p.model.to_channels_last();
  }
  if (c.engine != "eager" && p.device.is_cpu()) {
    p.model.use_fused_engine(/*graph_only=*/c.engine == "graph");
  }
  return p;
}

ImageClassifier open_classifier(const EvalCommand& c) {
  configure_runtime(c.threads);
  ClassifierOptions options;
  options.device = resolve_device(c.device);
  options.engine = engine_from_name(c.engine);
  options.prefer_ema = c.ema;
  options.channels_last = c.channels_last;
  options.autocast = amp_dtype_of(c.amp_dtype, options.device);
  options.max_batch = c.batch_size;
  options.resize_size = static_cast<int>(c.resize_size);
  options.crop_size = static_cast<int>(c.crop_size);
  auto model = InferenceModel::load(
      c.weights, c.ema, options.device, c.allow_non_finite);
  log_weights_notes(c.weights, model);
  warn_unused_dtypes(c, model);
  const auto classes = model.info().options.num_classes();
  if (!c.labels.empty()) {
    options.class_names = read_class_names(c.labels);
    if (static_cast<int64_t>(options.class_names.size()) != classes) {
      throw ConfigError("--labels '" + c.labels + "' names " +
                        std::to_string(options.class_names.size()) +
                        " classes but the model has " +
                        std::to_string(classes));
    }
  } else {
    options.class_names = imagenet_names_if_numbered(model.info().class_names);
  }
  if (model.info().resize == ResizePolicy::kSquash && c.resize_size > 0) {
    log::warn(
        "--resize-size is not used: these weights squash each image to "
        "--crop-size");
  }
  const auto resize =
      c.resize_size > 0 ? c.resize_size : model.info().val_resize;
  const auto crop = c.crop_size > 0 ? c.crop_size : model.info().val_crop;
  if (model.info().resize != ResizePolicy::kSquash && resize < crop) {
    throw ConfigError("--resize-size must not be smaller than --crop-size");
  }
  return ImageClassifier(std::move(model), options);
}

}  // namespace mnv2
