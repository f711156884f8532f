#include <mobilenetv2/weights/checkpoint.h>

#include <mobilenetv2/quantization/quantized_network.h>
#include <mobilenetv2/torch_files/community_layout.h>
#include <mobilenetv2/torch_files/load_weights.h>
#include <mobilenetv2/torch_files/torch_file.h>
#include <mobilenetv2/util/atomic_file.h>
#include <mobilenetv2/weights/sidecar.h>

#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace mnv2 {

namespace {

constexpr const char* kCheckpointFormat = "mnv2-checkpoint";
constexpr int64_t kCheckpointVersion = 1;

const c10::IValue& field(const c10::impl::GenericDict& dict,
                         const std::string& key,
                         const std::string& path) {
  return required_entry(dict, key, "checkpoint '" + path + "'");
}

void check_format_version(const c10::impl::GenericDict& dict,
                          const std::string& path) {
  const auto& version = field(dict, "format_version", path);
  if (!version.isInt() || version.toInt() < 1 ||
      version.toInt() > kCheckpointVersion) {
    throw WeightsError("checkpoint '" + path + "' has format version " +
                       (version.isInt() ? std::to_string(version.toInt())
                                        : std::string("of another type")) +
                       "; this build reads 1 to " +
                       std::to_string(kCheckpointVersion));
  }
}

void write_qat(c10::impl::GenericDict& dict, const QatState& qat) {
  dict.insert("qat_ranges", qat.ranges.cpu());
  dict.insert("qat_input_scale", qat.input_scale);
}

std::optional<QatState> read_qat(const c10::impl::GenericDict& dict,
                                 const std::string& path) {
  if (!dict.contains("qat_ranges")) {
    return std::nullopt;
  }
  QatState qat;
  const auto& ranges = dict.at("qat_ranges");
  const auto& scale = field(dict, "qat_input_scale", path);
  if (!ranges.isTensor() || ranges.toTensor().dim() != 1 ||
      !ranges.toTensor().is_floating_point() || !scale.isDouble()) {
    throw WeightsError("'" + path +
                       "': qat_ranges must be a 1-D float tensor and "
                       "qat_input_scale a number");
  }
  qat.ranges = ranges.toTensor().to(torch::kDouble).clone();
  qat.input_scale = scale.toDouble();
  if (!torch::isfinite(qat.ranges).all().item<bool>() ||
      (qat.ranges < 0).any().item<bool>() || qat.ranges.numel() > 1000 ||
      !(qat.input_scale >= kMinScale && qat.input_scale <= kMaxScale)) {
    throw WeightsError("'" + path +
                       "': its quantization-aware training ranges are out "
                       "of range");
  }
  return qat;
}

}  // namespace

bool is_checkpoint(const c10::IValue& value) {
  if (!value.isGenericDict()) {
    return false;
  }
  const auto dict = value.toGenericDict();
  auto it = dict.find(std::string("format"));
  return it != dict.end() && it->value().isString() &&
         it->value().toStringRef() == kCheckpointFormat;
}

void write_checkpoint(const Checkpoint& c, const std::string& path) {
  auto dict = string_keyed_dict();
  dict.insert("format", std::string(kCheckpointFormat));
  dict.insert("format_version", kCheckpointVersion);
  dict.insert("model", state_dict_to_ivalue(c.model));
  if (c.model_ema) {
    dict.insert("model_ema", state_dict_to_ivalue(*c.model_ema));
  }
  dict.insert("optimizer", state_dict_to_ivalue(c.optimizer));
  dict.insert("scaler_scale", c.scaler_scale.cpu());
  dict.insert("scaler_growth_tracker", c.scaler_growth_tracker.cpu());
  dict.insert("rng_state", c.rng_state);
  if (c.cuda_rng_state.defined()) {
    dict.insert("cuda_rng_state", c.cuda_rng_state);
  }
  dict.insert("epoch", c.progress.epoch);
  dict.insert("batch_in_epoch", c.progress.batch_in_epoch);
  dict.insert("global_step", c.progress.global_step);
  dict.insert("best_top1", c.progress.best_top1);
  dict.insert("world_size", c.progress.world_size);
  dict.insert("epoch_loss_sum", c.progress.epoch_loss_sum);
  dict.insert("model_info", model_info_to_ivalue(c.info));
  dict.insert("config", c.config_json);
  if (c.qat) {
    write_qat(dict, *c.qat);
  }
  write_torch_file(dict, path);
}

Checkpoint read_checkpoint(const std::string& path) {
  const auto value = read_torch_file(path);
  if (!is_checkpoint(value)) {
    throw WeightsError("'" + path + "' is not an mnv2-train checkpoint");
  }
  const auto dict = value.toGenericDict();
  check_format_version(dict, path);
  Checkpoint c;
  c.model = state_dict_from_ivalue(field(dict, "model", path), path);
  if (dict.contains("model_ema")) {
    c.model_ema = state_dict_from_ivalue(dict.at("model_ema"), path);
  }
  c.optimizer = state_dict_from_ivalue(field(dict, "optimizer", path), path);
  c.scaler_scale = field(dict, "scaler_scale", path).toTensor();
  c.scaler_growth_tracker =
      field(dict, "scaler_growth_tracker", path).toTensor();
  c.rng_state = field(dict, "rng_state", path).toTensor();
  if (dict.contains("cuda_rng_state")) {
    c.cuda_rng_state = dict.at("cuda_rng_state").toTensor();
  }
  c.progress.epoch = field(dict, "epoch", path).toInt();
  c.progress.batch_in_epoch = field(dict, "batch_in_epoch", path).toInt();
  c.progress.global_step = field(dict, "global_step", path).toInt();
  c.progress.best_top1 = field(dict, "best_top1", path).toDouble();
  // Checkpoints from before distributed training: one process.
  if (dict.contains("world_size")) {
    c.progress.world_size = dict.at("world_size").toInt();
  }
  if (dict.contains("epoch_loss_sum")) {
    c.progress.epoch_loss_sum = dict.at("epoch_loss_sum").toDouble();
  }
  c.info = model_info_from_ivalue(
      field(dict, "model_info", path).toGenericDict(), path);
  c.config_json = field(dict, "config", path).toStringRef();
  c.qat = read_qat(dict, path);
  return c;
}

void refuse_non_finite(const StateDict& state, const std::string& path) {
  for (const auto& item : state) {
    const auto& t = item.value();
    if (t.is_floating_point() && !torch::isfinite(t).all().item<bool>()) {
      throw WeightsError("'" + path + "': tensor '" + item.key() +
                         "' holds NaN or inf values (a diverged run?); "
                         "--allow-non-finite loads it anyway");
    }
  }
}

namespace {
LoadedWeights read_weights(const std::string& path, bool prefer_ema);
// The model information `<stem>.json` beside the weights gives (names,
// sizes, preprocessing); refuses one that describes another class count,
// and notes in `weights.warnings` what is assumed where there is none.
void add_names_and_metadata(LoadedWeights& weights,
                            const std::string& path,
                            bool width_from_shapes);
}  // namespace

LoadedWeights load_weights_file(const std::string& path,
                                bool prefer_ema,
                                bool allow_non_finite) {
  auto weights = read_weights(path, prefer_ema);
  if (!allow_non_finite) {
    refuse_non_finite(weights.state, path);
  }
  return weights;
}

namespace {

LoadedWeights read_weights(const std::string& path, bool prefer_ema) {
  const auto value = read_torch_file(path);
  LoadedWeights out;
  if (is_checkpoint(value)) {
    const auto dict = value.toGenericDict();
    check_format_version(dict, path);
    const bool ema = prefer_ema && dict.contains("model_ema");
    out.state =
        state_dict_from_ivalue(dict.at(ema ? "model_ema" : "model"), path);
    const auto info = dict.find("model_info");
    if (info == dict.end() || !info->value().isGenericDict()) {
      throw WeightsError("checkpoint '" + path + "' has no model_info");
    }
    out.info = model_info_from_ivalue(info->value().toGenericDict(), path);
    // The shapes decide: a model is built from model_info only when the
    // weights fit it (a mutated class count must not size a huge head).
    const auto shapes = infer_options(out.state, path);
    if (shapes.num_classes() != out.info.options.num_classes() ||
        shapes.width_mult() != out.info.options.width_mult()) {
      throw WeightsError(
          "'" + path + "': model_info says " +
          std::to_string(out.info.options.num_classes()) +
          " classes at width " + std::to_string(out.info.options.width_mult()) +
          " but the weights have " + std::to_string(shapes.num_classes()) +
          " at width " + std::to_string(shapes.width_mult()));
    }
    out.kind = ema ? "checkpoint-ema" : "checkpoint";
    out.qat = read_qat(dict, path);
    return out;
  }
  out.state = state_dict_from_ivalue(value, path);
  if (is_quantized_state_dict(out.state)) {
    // Checked whole here, so that every reader refuses a bad file alike.
    const auto net = quantized_from_state_dict(out.state, path);
    out.kind = "int8";
    out.info.options.num_classes(net.network.fc_weight.size(0));
    add_names_and_metadata(out, path, false);
    return out;
  }
  out.kind = "state_dict";
  if (is_community_layout(out.state)) {
    CommunityLayoutReport report;
    out.state = from_community_layout(out.state, path, &report);
    out.kind = "community-state_dict";
    out.conversion =
        "older community layout: " + std::to_string(report.mapped_layers / 2) +
        " convolution + BatchNorm pairs of " +
        std::to_string(report.mapped_blocks) +
        " blocks renamed onto torchvision's keys";
  }
  if (!has_classifier(out.state)) {
    out.conversion += std::string(out.conversion.empty() ? "" : "; ") +
                      "features only (no classifier)";
  }
  out.info.options = infer_options(out.state, path);
  add_names_and_metadata(out, path, true);
  return out;
}

void add_names_and_metadata(LoadedWeights& weights,
                            const std::string& path,
                            bool width_from_shapes) {
  auto& info = weights.info;
  const int64_t classes = info.options.num_classes();
  for (int64_t i = 0; i < classes; ++i) {
    info.class_names.push_back(std::to_string(i));
  }
  const auto sidecar = read_sidecar(path);
  if (!sidecar) {
    weights.warnings.push_back(
        "no '" + metadata_path_for(path) +
        "' beside the weights: ImageNet's evaluation " +
        "preprocessing is assumed (resize " + std::to_string(info.val_resize) +
        ", crop " + std::to_string(info.val_crop) +
        ", ImageNet's mean and std) and the classes are numbered 0-" +
        std::to_string(classes - 1));
    return;
  }
  auto meta = sidecar->info;
  // A sidecar of other weights (a copied or stale <stem>.json) would give
  // this file another model's preprocessing: refused, not ignored.
  const auto stated = sidecar->stated_classes.value_or(classes);
  const auto named = static_cast<int64_t>(sidecar->class_names.size());
  if (stated != classes || (named != 0 && named != classes)) {
    throw WeightsError("'" + sidecar->path + "' describes " +
                       std::to_string(stated != classes ? stated : named) +
                       " classes but the weights '" + path + "' have " +
                       std::to_string(classes) +
                       ": it belongs to other weights (remove or replace it)");
  }
  // The shapes decide the architecture; the file adds names and sizes
  // (and the width of a quantized network, whose shapes are not
  // torchvision's).
  meta.options.num_classes(classes);
  if (width_from_shapes) {
    meta.options.width_mult(info.options.width_mult());
  }
  meta.class_names = named != 0 ? sidecar->class_names : info.class_names;
  info = meta;
}

}  // namespace

}  // namespace mnv2
