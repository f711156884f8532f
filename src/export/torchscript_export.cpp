#include "export/torchscript_export.h"

#include <mobilenetv2/engines/scripted_network.h>

#include <torch/csrc/jit/passes/freeze_module.h>
#include <torch/script.h>

#include <filesystem>
#include <sstream>

namespace mnv2 {

void write_torchscript(const FoldedNetwork& network,
                       const std::string& metadata_json,
                       const std::string& path,
                       const TorchScriptOptions& options) {
  auto module = scripted_network(network);
  if (options.freeze) {
    module = torch::jit::freeze(module);
  }
  const auto temp = path + ".tmp";
  try {
    module.save(temp, {{"mnv2_metadata.json", metadata_json}});
    std::filesystem::rename(temp, path);
  } catch (...) {
    std::error_code ec;
    std::filesystem::remove(temp, ec);
    throw;
  }
}

}  // namespace mnv2
