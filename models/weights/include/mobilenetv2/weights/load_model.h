#pragma once

#include <mobilenetv2/nn/mobilenet_v2.h>

#include <string>

namespace mnv2 {

/// Builds the MobileNetV2 that a weights file describes (width and class count
/// from its shapes; padding and BatchNorm epsilon from the `<stem>.json`
/// metadata mnv2-export and mnv2-train write beside it, e.g. for weights
/// converted from Keras) and loads it strictly, in eval mode.
MobileNetV2 load_mobilenet_v2(const std::string& path);

}  // namespace mnv2
