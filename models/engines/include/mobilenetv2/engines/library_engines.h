#pragma once

#include <mobilenetv2/engines/engine.h>

#include <vector>

namespace mnv2 {

/// This library's engines, best first: int8-simulated (int8 files where
/// oneDNN is absent), graph (mnv2::FusedMobileNetV2), torchscript, eager.
std::vector<EngineKind> library_engine_kinds();

}  // namespace mnv2
