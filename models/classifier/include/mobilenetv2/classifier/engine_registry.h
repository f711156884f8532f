#pragma once

// The one place an engine is chosen: the kinds of this build in preference
// order, which of them are built for a model, and which of the built ones
// runs a batch.

#include <mobilenetv2/engines/engine.h>

#include <memory>
#include <optional>
#include <vector>

namespace mnv2 {

/// Every engine kind of this build, best first: the oneDNN add-on's where
/// built, then the library's (mnv2::library_engine_kinds).
const std::vector<EngineKind>& engine_registry();

/// The engines every accepting kind builds for `weights`, in registry order.
std::vector<std::shared_ptr<const InferenceEngine>> build_engines(
    const EngineWeights& weights,
    EnginePreference preference,
    const torch::Device& device);

/// The first of `engines` that serves this CPU autocast dtype (nullopt:
/// none). Throws std::logic_error where none does.
const InferenceEngine& select_engine(
    const std::vector<std::shared_ptr<const InferenceEngine>>& engines,
    const std::optional<c10::ScalarType>& autocast);

}  // namespace mnv2
