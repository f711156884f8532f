#include <mobilenetv2/classifier/engine_registry.h>

#include <mobilenetv2/engines/library_engines.h>
#include <mobilenetv2/engines/onednn/onednn_engines.h>

#include <stdexcept>

namespace mnv2 {

const std::vector<EngineKind>& engine_registry() {
  static const auto kinds = [] {
    auto all = onednn_engine_kinds();
    for (auto& kind : library_engine_kinds()) {
      all.push_back(std::move(kind));
    }
    return all;
  }();
  return kinds;
}

std::vector<std::shared_ptr<const InferenceEngine>> build_engines(
    const EngineWeights& weights,
    EnginePreference preference,
    const torch::Device& device) {
  std::vector<std::shared_ptr<const InferenceEngine>> engines;
  for (const auto& kind : engine_registry()) {
    if (kind.accepts(weights, preference, device)) {
      engines.push_back(kind.build(weights));
    }
  }
  return engines;
}

const InferenceEngine& select_engine(
    const std::vector<std::shared_ptr<const InferenceEngine>>& engines,
    const std::optional<c10::ScalarType>& autocast) {
  for (const auto& engine : engines) {
    if (engine->serves(autocast)) {
      return *engine;
    }
  }
  throw std::logic_error("no engine runs these weights");
}

}  // namespace mnv2
