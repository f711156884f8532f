#include <mobilenetv2/weights/model_info.h>

#include <mobilenetv2/util/weights_error.h>
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cmath>
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

namespace {

// A sidecar's field, typed: absent gives `fallback`; a value of another type,
// or a number an integer field cannot hold exactly, is refused naming the key
// and the value as written (nlohmann would convert 1e30 to INT64_MIN).
class SidecarFields {
 public:
  SidecarFields(const nlohmann::json& j, const std::string& origin)
      : j_(j), origin_(origin) {}

  int64_t integer(const char* key, int64_t fallback) const {
    if (!j_.contains(key)) {
      return fallback;
    }
    const auto& v = j_.at(key);
    if (v.is_number_integer()) {
      return v.get<int64_t>();
    }
    if (!v.is_number()) {
      refuse(key, "an integer");
    }
    // A whole float (48.0) is taken; 1e30 or 48.5 is not.
    const double d = v.get<double>();
    if (!(d == std::floor(d) && std::abs(d) < 1e15)) {
      refuse(key, "an integer");
    }
    return static_cast<int64_t>(d);
  }
  double number(const char* key, double fallback) const {
    if (!j_.contains(key)) {
      return fallback;
    }
    if (!j_.at(key).is_number()) {
      refuse(key, "a number");
    }
    return j_.at(key).get<double>();
  }
  std::string text(const char* key, const std::string& fallback) const {
    if (!j_.contains(key)) {
      return fallback;
    }
    if (!j_.at(key).is_string()) {
      refuse(key, "a string");
    }
    return j_.at(key).get<std::string>();
  }
  std::array<double, 3> three_numbers(
      const char* key, const std::array<double, 3>& fallback) const {
    if (!j_.contains(key)) {
      return fallback;
    }
    const auto& v = j_.at(key);
    if (!v.is_array() || v.size() != 3 ||
        !std::all_of(v.begin(), v.end(), [](const nlohmann::json& x) {
          return x.is_number();
        })) {
      refuse(key, "a list of 3 numbers");
    }
    return {v[0].get<double>(), v[1].get<double>(), v[2].get<double>()};
  }
  std::vector<std::string> strings(const char* key) const {
    if (!j_.contains(key)) {
      return {};
    }
    const auto& v = j_.at(key);
    if (!v.is_array() ||
        !std::all_of(v.begin(), v.end(), [](const nlohmann::json& x) {
          return x.is_string();
        })) {
      refuse(key, "a list of strings");
    }
    return v.get<std::vector<std::string>>();
  }

 private:
  [[noreturn]] void refuse(const char* key, const char* expected) const {
    auto given = j_.at(key).dump();
    if (given.size() > 40) {
      given = given.substr(0, 37) + "...";
    }
    throw WeightsError("metadata of '" + origin_ + "': \"" + key +
                       "\" must be " + expected + ", not " + given);
  }

  const nlohmann::json& j_;
  const std::string& origin_;
};

}  // namespace

int64_t class_names_in_json(const std::string& json) {
  const auto j = nlohmann::json::parse(json, nullptr, false);
  if (!j.is_object() || !j.contains("class_names") ||
      !j["class_names"].is_array()) {
    return 0;
  }
  return static_cast<int64_t>(j["class_names"].size());
}

ModelInfo model_info_from_json(const std::string& json,
                               const std::string& origin) {
  ModelInfo info;
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(json);
  } catch (const nlohmann::json::exception& e) {
    throw WeightsError("metadata of '" + origin +
                       "' is not valid JSON: " + e.what());
  }
  if (!j.is_object()) {
    throw WeightsError("metadata of '" + origin + "' is not a JSON object");
  }
  SidecarFields f(j, origin);
  try {
    info.options.num_classes(f.integer("num_classes", 1000))
        .width_mult(f.number("width_mult", 1.0))
        .dropout(f.number("dropout", 0.2));
    info.img_size = f.integer("img_size", info.img_size);
    info.val_resize = f.integer("val_resize", info.val_resize);
    info.val_crop = f.integer("val_crop", info.val_crop);
    info.options.padding(padding_from_name(f.text("padding", "torch")))
        .bn_eps(f.number("bn_eps", info.options.bn_eps()));
    info.normalization.mean = f.three_numbers("mean", info.normalization.mean);
    info.normalization.stddev =
        f.three_numbers("std", info.normalization.stddev);
    info.resize = resize_policy_from_name(
        f.text("resize", resize_policy_name(info.resize)));
    info.class_names = f.strings("class_names");
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
