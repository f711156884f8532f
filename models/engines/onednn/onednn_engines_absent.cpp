// Compiled into the classifier where the oneDNN add-on is not built.

#include <mobilenetv2/engines/onednn/onednn_engines.h>

namespace mnv2 {

std::vector<EngineKind> onednn_engine_kinds() {
  return {};
}

}  // namespace mnv2
