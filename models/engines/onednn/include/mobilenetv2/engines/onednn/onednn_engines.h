#pragma once

#include <mobilenetv2/engines/engine.h>

#include <vector>

namespace mnv2 {

/// The oneDNN add-on's engines, best first: onednn-int8 (int8 files) and
/// onednn (fp32 weights under the kFused preference, without autocast).
/// Empty in a build without the add-on (onednn_engines_absent.cpp).
std::vector<EngineKind> onednn_engine_kinds();

}  // namespace mnv2
