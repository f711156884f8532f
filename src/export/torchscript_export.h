#pragma once

#include <mobilenetv2/nn/folded_network.h>

#include <string>

namespace mnv2 {

struct TorchScriptOptions {
  /// torch::jit::freeze: parameters become constants.
  bool freeze = false;
};

/// Writes a TorchScript file that `torch::jit::load` (C++) and
/// `torch.jit.load` (Python) run with no dependency on this project: the
/// folded network as parameters of a scripted module with a generated
/// forward, in inference mode (`training` is registered as false), with
/// `metadata_json` stored as the extra file "mnv2_metadata.json". Written to
/// a temporary file and renamed.
void write_torchscript(const FoldedNetwork& network,
                       const std::string& metadata_json,
                       const std::string& path,
                       const TorchScriptOptions& options);

}  // namespace mnv2
