#include "eval/eval_setup.h"

#include "common/autocast.h"
#include "common/errors.h"
#include "common/log.h"
#include "common/runtime.h"
#include "data/dataset.h"

#include <torch/torch.h>

#include <filesystem>

namespace mnv2 {

namespace {
constexpr size_t kImageNetClasses = 1000;
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
  Prepared p{resolve_device(c.device), {}, {}, {}};
  p.model =
      InferenceModel::load(c.weights, c.ema, p.device, c.allow_non_finite);
  if (!p.model.conversion().empty()) {
    log::info(log::cat(c.weights, ": ", p.model.conversion()));
  }
  if (c.channels_last) {
    p.model.to_channels_last();
  }
  if (c.engine != "eager" && p.device.is_cpu()) {
    p.model.use_fused_engine(/*graph_only=*/c.engine == "graph");
  }
  p.class_names = p.model.info().class_names;
  if (!c.labels.empty()) {
    p.class_names = read_class_names(c.labels);
    if (p.class_names.size() !=
        static_cast<size_t>(p.model.info().options.num_classes())) {
      throw ConfigError("--labels '" + c.labels + "' names " +
                        std::to_string(p.class_names.size()) +
                        " classes but the model has " +
                        std::to_string(p.model.info().options.num_classes()));
    }
  }
  if (c.labels.empty() && p.class_names.size() == kImageNetClasses &&
      p.class_names.front() == "0") {
    // Plain 1000-class weights (e.g. torchvision's): ImageNet's names, from
    // data/ of the checkout the program was built in.
    std::error_code ec;
    const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
    const auto list =
        exe.parent_path() / ".." / ".." / "data" / "imagenet_classes.txt";
    if (!ec && std::filesystem::exists(list)) {
      p.class_names = read_class_names(list.string());
    }
  }
  p.transform.resize_size = static_cast<int>(
      c.resize_size > 0 ? c.resize_size : p.model.info().val_resize);
  p.transform.crop_size =
      static_cast<int>(c.crop_size > 0 ? c.crop_size : p.model.info().val_crop);
  p.transform.policy = p.model.info().resize;
  if (p.transform.policy == ResizePolicy::kSquash) {
    if (c.resize_size > 0) {
      log::warn(
          "--resize-size is not used: these weights squash each image to "
          "--crop-size");
    }
    p.transform.resize_size = p.transform.crop_size;
  }
  if (p.transform.resize_size < p.transform.crop_size) {
    throw ConfigError("--resize-size must not be smaller than --crop-size");
  }
  return p;
}

torch::Tensor logits_of(const Prepared& p,
                        const torch::Tensor& x,
                        const std::optional<c10::ScalarType>& amp) {
  torch::NoGradGuard no_grad;
  AutocastGuard autocast(
      p.device.type(), amp.value_or(torch::kFloat), amp.has_value());
  return p.model.forward(x).to(torch::kCPU, torch::kFloat);
}

}  // namespace mnv2
