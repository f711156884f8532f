#include <mobilenetv2/model_info.h>

#include <mobilenetv2/weights_io.h>
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <sstream>
#include <stdexcept>

namespace mnv2 {

c10::impl::GenericDict string_keyed_dict() {
  return c10::impl::GenericDict(c10::StringType::get(), c10::AnyType::get());
}

const c10::IValue& required_entry(const c10::impl::GenericDict& dict,
                                  const std::string& key,
                                  const std::string& where) {
  auto it = dict.find(key);
  if (it == dict.end()) {
    throw WeightsError(where + " has no '" + key + "'");
  }
  return it->value();
}

c10::IValue model_info_to_ivalue(const ModelInfo& info) {
  auto dict = string_keyed_dict();
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

ModelInfo model_info_from_ivalue(const c10::impl::GenericDict& dict,
                                 const std::string& path) {
  const std::string where = "checkpoint '" + path + "': model_info";
  ModelInfo info;
  try {
    info.options.num_classes(required_entry(dict, "num_classes", where).toInt())
        .width_mult(required_entry(dict, "width_mult", where).toDouble())
        .dropout(required_entry(dict, "dropout", where).toDouble());
    info.img_size = required_entry(dict, "img_size", where).toInt();
    info.val_resize = required_entry(dict, "val_resize", where).toInt();
    info.val_crop = required_entry(dict, "val_crop", where).toInt();
    for (const auto& name :
         required_entry(dict, "class_names", where).toList()) {
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

}  // namespace mnv2
