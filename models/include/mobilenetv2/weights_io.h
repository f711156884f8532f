#pragma once

#include <mobilenetv2/mobilenet_v2.h>
#include <mobilenetv2/options.h>

#include <ATen/core/ivalue.h>
#include <torch/ordered_dict.h>

#include <stdexcept>
#include <string>
#include <vector>

namespace mnv2 {

/// Parameter and buffer tensors by torchvision's state_dict key.
using StateDict = torch::OrderedDict<std::string, torch::Tensor>;

/// Any problem with a weights file. `what()` is one line naming the file.
class WeightsError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Reads a file written by Python's `torch.save` (zip format) or by
/// `write_torch_file`, with OrderedDicts read as dicts. Throws WeightsError.
c10::IValue read_torch_file(const std::string& path);

/// Writes `value` in the zip format Python's `torch.load` reads, atomically.
/// Throws WeightsError.
void write_torch_file(const c10::IValue& value, const std::string& path);

/// Reads a state_dict: a `torch.save(model.state_dict())` file (OrderedDict,
/// as torchvision's published weights are) or a plain dict of tensors; also a
/// checkpoint holding one under "model" or "state_dict". A
/// DistributedDataParallel "module." prefix is removed. Throws WeightsError.
StateDict read_state_dict(const std::string& path);

/// The tensors of a dict IValue whose values are tensors, by key; `origin`
/// names the file or entry in errors. Throws WeightsError.
StateDict state_dict_from_ivalue(const c10::IValue& value,
                                 const std::string& origin);
/// A state_dict as the dict IValue `write_torch_file` writes.
c10::IValue state_dict_to_ivalue(const StateDict& state);

/// Writes a torchvision-compatible weights file (a dict of CPU tensors that
/// `torchvision.models.mobilenet_v2(...).load_state_dict` accepts), atomically.
void write_state_dict(const StateDict& state, const std::string& path);

/// A module's parameters and buffers in the order and with the names of
/// Python's `state_dict()` (module by module, parameters before buffers).
StateDict state_dict_of(const torch::nn::Module& module);

/// num_classes and width_mult read from a MobileNetV2 state_dict's shapes.
/// A features-only state_dict (no `classifier.*`, e.g. a backbone) gives the
/// width with the default num_classes. Throws WeightsError when no standard
/// width reproduces every shape.
MobileNetV2Options infer_options(const StateDict& state,
                                 const std::string& origin = "state_dict");

/// Whether the state_dict has torchvision's classifier (`classifier.1.*`).
bool has_classifier(const StateDict& state);

/// Whether `state` is in the older community MobileNetV2 layout (before
/// torchvision's, e.g. tonylins/pytorch-mobilenet-v2): each block's layers in
/// one flat Sequential, `features.1.conv.0.weight`, `features.1.conv.1.*`, ...
/// where torchvision nests them (`features.1.conv.0.0.weight`).
bool is_community_layout(const StateDict& state);

/// What `from_community_layout` did.
struct CommunityLayoutReport {
  int64_t mapped_blocks = 0;  ///< inverted residual blocks renamed
  int64_t mapped_layers = 0;  ///< convolutions and BatchNorms among them
};

/// Renames a community-layout state_dict onto torchvision's keys by structure:
/// in each block the (convolution, BatchNorm) pairs in order become
/// torchvision's units, the last pair its linear projection. Other keys are
/// kept. Throws WeightsError when a block is not such a sequence.
StateDict from_community_layout(const StateDict& state,
                                const std::string& origin,
                                CommunityLayoutReport* report = nullptr);

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

/// Builds the MobileNetV2 that a weights file describes (width and class count
/// from its shapes; padding and BatchNorm epsilon from the `<stem>.json`
/// metadata mnv2-export and mnv2-train write beside it, e.g. for weights
/// converted from Keras) and loads it strictly, in eval mode.
MobileNetV2 load_mobilenet_v2(const std::string& path);

}  // namespace mnv2
