#pragma once

#include <mobilenetv2/util/weights_error.h>

#include <ATen/core/ivalue.h>
#include <torch/nn/module.h>
#include <torch/ordered_dict.h>

#include <string>

namespace mnv2 {

/// Parameter and buffer tensors by torchvision's state_dict key.
using StateDict = torch::OrderedDict<std::string, torch::Tensor>;

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

}  // namespace mnv2
