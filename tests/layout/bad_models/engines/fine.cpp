// Fixture for layout.models_violation_is_caught: includes the directions
// allow, which the check must not report.
#include <mobilenetv2/engines/engine.h>
#include <mobilenetv2/nn/mobilenet_v2.h>
#include <mobilenetv2/quantization/quantized_network.h>
#include <torch/torch.h>
