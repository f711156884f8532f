#include "common/checkpoint.h"

#include <mobilenetv2/atomic_file.h>

#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace mnv2 {

namespace {

constexpr const char* kFormat = "mnv2-checkpoint";
constexpr int64_t kFormatVersion = 1;

c10::impl::GenericDict new_dict() {
  return c10::impl::GenericDict(c10::StringType::get(), c10::AnyType::get());
}

c10::IValue info_to_ivalue(const ModelInfo& info) {
  auto dict = new_dict();
  dict.insert("num_classes", info.options.num_classes());
  dict.insert("width_mult", info.options.width_mult());
  dict.insert("dropout", info.options.dropout());
  dict.insert("img_size", info.img_size);
  dict.insert("val_resize", info.val_resize);
  dict.insert("val_crop", info.val_crop);
  dict.insert("padding", padding_name(info.options.padding()));
  dict.insert("resize", resize_policy_name(info.resize));
  dict.insert("bn_eps", info.options.bn_eps());
  // Lists of any type pickle as plain lists, which Python's
  // torch.load(weights_only=True) accepts (typed double lists do not).
  for (const auto& [key, values] :
       {std::pair{"mean", info.normalization.mean},
        std::pair{"std", info.normalization.stddev}}) {
    c10::impl::GenericList list(c10::AnyType::get());
    for (double v : values) {
      list.push_back(v);
    }
    dict.insert(key, list);
  }
  c10::List<std::string> names;
  for (const auto& name : info.class_names) {
    names.push_back(name);
  }
  dict.insert("class_names", names);
  return dict;
}

const c10::IValue& info_field(const c10::impl::GenericDict& dict,
                              const std::string& key,
                              const std::string& path) {
  auto it = dict.find(key);
  if (it == dict.end()) {
    throw WeightsError("checkpoint '" + path + "': model_info has no '" + key +
                       "'");
  }
  return it->value();
}

ModelInfo info_from_ivalue(const c10::impl::GenericDict& dict,
                           const std::string& path) {
  ModelInfo info;
  try {
    info.options.num_classes(info_field(dict, "num_classes", path).toInt())
        .width_mult(info_field(dict, "width_mult", path).toDouble())
        .dropout(info_field(dict, "dropout", path).toDouble());
    info.img_size = info_field(dict, "img_size", path).toInt();
    info.val_resize = info_field(dict, "val_resize", path).toInt();
    info.val_crop = info_field(dict, "val_crop", path).toInt();
    for (const auto& name : info_field(dict, "class_names", path).toList()) {
      info.class_names.push_back(name.get().toStringRef());
    }
    // Fields added later: a checkpoint without them has the defaults.
    if (dict.contains("padding")) {
      info.options.padding(padding_from_name(dict.at("padding").toStringRef()));
    }
    if (dict.contains("resize")) {
      info.resize = resize_policy_from_name(dict.at("resize").toStringRef());
    }
    if (dict.contains("bn_eps")) {
      info.options.bn_eps(dict.at("bn_eps").toDouble());
    }
    for (const auto& [key, target] :
         {std::pair{"mean", &info.normalization.mean},
          std::pair{"std", &info.normalization.stddev}}) {
      if (dict.contains(key)) {
        const auto values = dict.at(key).toList();
        if (values.size() != 3) {
          throw WeightsError("checkpoint '" + path + "': model_info '" + key +
                             "' must have 3 values");
        }
        for (size_t c = 0; c < 3; ++c) {
          (*target)[c] = values.get(c).toDouble();
        }
      }
    }
  } catch (const std::invalid_argument& e) {
    throw WeightsError("checkpoint '" + path + "': " + e.what());
  } catch (const c10::Error&) {
    throw WeightsError("checkpoint '" + path +
                       "': a model_info field has the wrong type");
  }
  validate_model_info(info, path);
  return info;
}

const c10::IValue& field(const c10::impl::GenericDict& dict,
                         const std::string& key,
                         const std::string& path) {
  auto it = dict.find(key);
  if (it == dict.end()) {
    throw WeightsError("checkpoint '" + path + "' has no '" + key + "'");
  }
  return it->value();
}

}  // namespace

void validate_model_info(const ModelInfo& info,
                         const std::string& origin,
                         bool names_must_match) {
  const auto refuse = [&](const std::string& what, const auto& value) {
    std::ostringstream text;
    text << "'" << origin << "': " << what << " " << value
         << " is out of range";
    throw WeightsError(text.str());
  };
  const auto classes = info.options.num_classes();
  if (classes < 1 || classes > kMaxClasses) {
    refuse("num_classes", classes);
  }
  const double width = info.options.width_mult();
  if (!(width > 0 && width <= kMaxWidthMult)) {
    refuse("width_mult", width);
  }
  const double dropout = info.options.dropout();
  if (!(dropout >= 0 && dropout < 1)) {
    refuse("dropout", dropout);
  }
  for (const auto& [name, size] : {std::pair{"img_size", info.img_size},
                                   std::pair{"val_crop", info.val_crop},
                                   std::pair{"val_resize", info.val_resize}}) {
    if (size < kMinImageSize || size > kMaxImageSize) {
      refuse(name, size);
    }
  }
  if (info.val_crop > info.val_resize) {
    refuse("val_crop (above val_resize)", info.val_crop);
  }
  const double eps = info.options.bn_eps();
  if (!(eps > 0 && eps <= 1)) {
    refuse("bn_eps", eps);
  }
  for (size_t c = 0; c < 3; ++c) {
    const double mean = info.normalization.mean[c];
    const double stddev = info.normalization.stddev[c];
    if (!(mean >= -10 && mean <= 10)) {
      refuse("mean", mean);
    }
    if (!(stddev >= 1e-3 && stddev <= 10)) {
      refuse("std", stddev);
    }
  }
  if (names_must_match &&
      info.class_names.size() != static_cast<size_t>(classes)) {
    refuse("class_names count", info.class_names.size());
  }
}

namespace {

void check_format_version(const c10::impl::GenericDict& dict,
                          const std::string& path) {
  const auto& version = field(dict, "format_version", path);
  if (!version.isInt() || version.toInt() < 1 ||
      version.toInt() > kFormatVersion) {
    throw WeightsError("checkpoint '" + path + "' has format version " +
                       (version.isInt() ? std::to_string(version.toInt())
                                        : std::string("of another type")) +
                       "; this build reads 1 to " +
                       std::to_string(kFormatVersion));
  }
}

}  // namespace

bool is_checkpoint(const c10::IValue& value) {
  if (!value.isGenericDict()) {
    return false;
  }
  const auto dict = value.toGenericDict();
  auto it = dict.find(std::string("format"));
  return it != dict.end() && it->value().isString() &&
         it->value().toStringRef() == kFormat;
}

void write_checkpoint(const Checkpoint& c, const std::string& path) {
  auto dict = new_dict();
  dict.insert("format", std::string(kFormat));
  dict.insert("format_version", kFormatVersion);
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
  dict.insert("model_info", info_to_ivalue(c.info));
  dict.insert("config", c.config_json);
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
  c.info =
      info_from_ivalue(field(dict, "model_info", path).toGenericDict(), path);
  c.config_json = field(dict, "config", path).toStringRef();
  return c;
}

std::string metadata_path_for(const std::string& weights_path) {
  return std::filesystem::path(weights_path)
      .replace_extension(".json")
      .string();
}

std::string model_info_to_json(const ModelInfo& info,
                               const std::string& extra_json_fields) {
  auto j = nlohmann::json::parse(extra_json_fields);
  j["architecture"] = "mobilenet_v2";
  j["num_classes"] = info.options.num_classes();
  j["width_mult"] = info.options.width_mult();
  j["dropout"] = info.options.dropout();
  j["img_size"] = info.img_size;
  j["val_resize"] = info.val_resize;
  j["val_crop"] = info.val_crop;
  j["padding"] = padding_name(info.options.padding());
  j["bn_eps"] = info.options.bn_eps();
  j["mean"] = info.normalization.mean;
  j["std"] = info.normalization.stddev;
  j["resize"] = resize_policy_name(info.resize);
  j["class_names"] = info.class_names;
  return j.dump(1) + "\n";
}

ModelInfo model_info_from_json(const std::string& json,
                               const std::string& origin) {
  ModelInfo info;
  try {
    const auto j = nlohmann::json::parse(json);
    info.options.num_classes(j.value("num_classes", int64_t{1000}))
        .width_mult(j.value("width_mult", 1.0))
        .dropout(j.value("dropout", 0.2));
    info.img_size = j.value("img_size", info.img_size);
    info.val_resize = j.value("val_resize", info.val_resize);
    info.val_crop = j.value("val_crop", info.val_crop);
    info.options.padding(padding_from_name(j.value("padding", "torch")))
        .bn_eps(j.value("bn_eps", info.options.bn_eps()));
    info.normalization.mean = j.value("mean", info.normalization.mean);
    info.normalization.stddev = j.value("std", info.normalization.stddev);
    info.resize = resize_policy_from_name(
        j.value("resize", resize_policy_name(info.resize)));
    if (j.contains("class_names")) {
      info.class_names = j["class_names"].get<std::vector<std::string>>();
    }
  } catch (const nlohmann::json::exception& e) {
    throw WeightsError("metadata of '" + origin +
                       "' is not valid JSON: " + e.what());
  } catch (const std::invalid_argument& e) {
    throw WeightsError("metadata of '" + origin + "': " + e.what());
  }
  validate_model_info(info, origin, /*names_must_match=*/false);
  if (info.class_names.size() !=
      static_cast<size_t>(info.options.num_classes())) {
    info.class_names.clear();
    for (int64_t i = 0; i < info.options.num_classes(); ++i) {
      info.class_names.push_back(std::to_string(i));
    }
  }
  return info;
}

void write_weights_metadata(const ModelInfo& info,
                            const std::string& weights_path,
                            const std::string& extra_json_fields) {
  auto j = nlohmann::json::parse(extra_json_fields);
  j["weights_file"] = std::filesystem::path(weights_path).filename().string();
  write_file_atomically(metadata_path_for(weights_path),
                        model_info_to_json(info, j.dump()));
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
    out.info = info_from_ivalue(info->value().toGenericDict(), path);
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
    return out;
  }
  out.state = state_dict_from_ivalue(value, path);
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
  out.has_classifier = has_classifier(out.state);
  if (!out.has_classifier) {
    out.conversion += std::string(out.conversion.empty() ? "" : "; ") +
                      "features only (no classifier)";
  }
  out.info.options = infer_options(out.state, path);
  for (int64_t i = 0; i < out.info.options.num_classes(); ++i) {
    out.info.class_names.push_back(std::to_string(i));
  }
  const auto meta_path = metadata_path_for(path);
  if (std::filesystem::exists(meta_path)) {
    std::ifstream in(meta_path);
    const std::string json{std::istreambuf_iterator<char>(in), {}};
    auto meta = model_info_from_json(json, meta_path);
    // The shapes decide the architecture; the file adds names and sizes.
    meta.options.num_classes(out.info.options.num_classes())
        .width_mult(out.info.options.width_mult());
    if (meta.class_names.size() == out.info.class_names.size()) {
      out.info = meta;
    }
  }
  return out;
}

}  // namespace

}  // namespace mnv2
