#pragma once

#include <mobilenetv2/preprocessing/preprocessing.h>

#include <mobilenetv2/nn/options.h>

#include <ATen/core/ivalue.h>

#include <cstdint>
#include <string>
#include <vector>

namespace mnv2 {

/// Bounds on what a weights file or its metadata may claim, checked before
/// anything is sized from it (ImageNet-21k has 21,841 classes).
constexpr int64_t kMaxClasses = 100000;
constexpr double kMaxWidthMult = 4.0;
constexpr int64_t kMinImageSize = 16;
constexpr int64_t kMaxImageSize = 4096;

/// What mnv2-eval and mnv2-export need to know about trained weights: the
/// architecture (options, incl. padding and BatchNorm epsilon) and the
/// preprocessing the weights expect.
struct ModelInfo {
  MobileNetV2Options options;
  std::vector<std::string> class_names;
  int64_t img_size = 224;
  int64_t val_resize = 256;
  int64_t val_crop = 224;
  Normalization normalization;
  ResizePolicy resize = ResizePolicy::kShorterSideCenterCrop;
};

/// Throws WeightsError naming `origin` and the value when a field is out of
/// range (and, if `names_must_match`, when the names do not count the
/// classes).
void validate_model_info(const ModelInfo& info,
                         const std::string& origin,
                         bool names_must_match = true);

/// A dict with string keys and values of any type: what our checkpoints
/// pickle (Python reads it as a plain dict).
c10::impl::GenericDict string_keyed_dict();
/// `dict[key]`; throws WeightsError "<where> has no '<key>'".
const c10::IValue& required_entry(const c10::impl::GenericDict& dict,
                                  const std::string& key,
                                  const std::string& where);

/// ModelInfo in a checkpoint (a dict of plain values) and back; fields added
/// later keep their defaults when absent. Throws WeightsError naming `path`.
c10::IValue model_info_to_ivalue(const ModelInfo& info);
ModelInfo model_info_from_ivalue(const c10::impl::GenericDict& dict,
                                 const std::string& path);

/// ModelInfo as JSON (the metadata file's fields) and back; `origin` names
/// the source in errors. Missing fields keep their defaults.
std::string model_info_to_json(const ModelInfo& info,
                               const std::string& extra_json_fields = "{}");
ModelInfo model_info_from_json(const std::string& json,
                               const std::string& origin);
/// How many class names metadata JSON lists (0 for none). model_info_from_json
/// numbers the classes instead when the count differs from num_classes;
/// callers compare the two to say so.
int64_t class_names_in_json(const std::string& json);

}  // namespace mnv2
