#pragma once

#include <mobilenetv2/nn/options.h>
#include <mobilenetv2/torch_files/state_dict.h>

#include <string>
#include <vector>

namespace mnv2 {

/// num_classes and width_mult read from a MobileNetV2 state_dict's shapes.
/// A features-only state_dict (no `classifier.*`, e.g. a backbone) gives the
/// width with the default num_classes. Throws WeightsError when no standard
/// width reproduces every shape.
MobileNetV2Options infer_options(const StateDict& state,
                                 const std::string& origin = "state_dict");

/// Whether the state_dict has torchvision's classifier (`classifier.1.*`).
bool has_classifier(const StateDict& state);

/// What `load_weights` found wrong; empty lists mean an exact match.
struct LoadReport {
  std::vector<std::string> missing;     ///< in the model, not in the file
  std::vector<std::string> unexpected;  ///< in the file, not in the model
  std::vector<std::string> mismatched;  ///< "key: model [..] vs file [..]"
  bool exact() const {
    return missing.empty() && unexpected.empty() && mismatched.empty();
  }
  /// One line listing every problem by name.
  std::string summary() const;
};

enum class LoadMode {
  kStrict,     ///< any missing, unexpected or mis-shaped key is an error
  kNonStrict,  ///< load what matches (e.g. all but a new classifier head)
};

/// Copies matching tensors into `module`'s parameters and buffers.
/// Throws WeightsError in strict mode unless the report is exact.
LoadReport load_weights(torch::nn::Module& module,
                        const StateDict& state,
                        LoadMode mode = LoadMode::kStrict,
                        const std::string& origin = "state_dict");

}  // namespace mnv2
