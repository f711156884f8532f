#include <mobilenetv2/torch_files/state_dict.h>
#include <mobilenetv2/torch_files/torch_file.h>

#include <torch/nn/module.h>

namespace mnv2 {

namespace {

constexpr const char* kDataParallelPrefix = "module.";

// A checkpoint may keep the state_dict under one of these keys.
const c10::IValue* find_nested_state_dict(const c10::impl::GenericDict& dict) {
  for (const char* key : {"model", "state_dict"}) {
    auto it = dict.find(c10::IValue(std::string(key)));
    if (it != dict.end() && it->value().isGenericDict()) {
      return &it->value();
    }
  }
  return nullptr;
}

}  // namespace

StateDict state_dict_from_ivalue(const c10::IValue& value,
                                 const std::string& origin) {
  if (!value.isGenericDict()) {
    throw WeightsError("'" + origin + "' holds a " + value.tagKind() +
                       ", not a dict of tensors (a state_dict)");
  }
  const auto dict = value.toGenericDict();
  if (const auto* nested = find_nested_state_dict(dict)) {
    return state_dict_from_ivalue(*nested, origin);
  }
  StateDict state;
  for (const auto& entry : dict) {
    if (!entry.key().isString()) {
      throw WeightsError("'" + origin + "' has a key that is not a string");
    }
    std::string key = entry.key().toStringRef();
    if (!entry.value().isTensor()) {
      throw WeightsError("'" + origin + "': entry '" + key + "' is a " +
                         entry.value().tagKind() + ", not a tensor");
    }
    if (key.rfind(kDataParallelPrefix, 0) == 0) {
      key.erase(0, std::string(kDataParallelPrefix).size());
    }
    if (state.contains(key)) {
      throw WeightsError("'" + origin + "' has the key '" + key + "' twice");
    }
    state.insert(key, entry.value().toTensor());
  }
  if (state.is_empty()) {
    throw WeightsError("'" + origin + "' holds no tensors");
  }
  return state;
}

c10::IValue state_dict_to_ivalue(const StateDict& state) {
  c10::Dict<std::string, at::Tensor> dict;
  for (const auto& item : state) {
    // Written synchronously, so no copy is needed beyond a standard layout.
    dict.insert(item.key(), item.value().detach().to(torch::kCPU).contiguous());
  }
  return dict;
}

StateDict read_state_dict(const std::string& path) {
  return state_dict_from_ivalue(read_torch_file(path), path);
}

void write_state_dict(const StateDict& state, const std::string& path) {
  write_torch_file(state_dict_to_ivalue(state), path);
}

StateDict state_dict_of(const torch::nn::Module& module) {
  StateDict state;
  for (const auto& item : module.named_modules()) {
    const std::string prefix = item.key().empty() ? "" : item.key() + ".";
    for (const auto& p : item.value()->named_parameters(/*recurse=*/false)) {
      state.insert(prefix + p.key(), p.value());
    }
    for (const auto& b : item.value()->named_buffers(/*recurse=*/false)) {
      state.insert(prefix + b.key(), b.value());
    }
  }
  return state;
}

}  // namespace mnv2
