#pragma once

// Quantization-aware training: a MobileNetV2's forward pass with the int8
// engine's quantization simulated (fake quantization), so that training
// adapts the weights to it, and the int8 network the result is.

#include <mobilenetv2/nn/mobilenet_v2.h>
#include <mobilenetv2/quantization/quantized_network.h>

#include <cstdint>

namespace mnv2 {

/// What QAT keeps beside the model's parameters.
struct QatState {
  /// Each convolution's output range (the largest |value| its codes hold),
  /// in network order as QuantizedNetwork::convs, then the logits' range:
  /// an exponential moving average of each training batch's largest
  /// |value|, started from the first batch (-1 until then). float64, CPU.
  torch::Tensor ranges;
  /// The s8 step of the normalised input (its largest |value| / 127).
  double input_scale = 0;
  /// Weight of a new batch's range in the moving average.
  double range_momentum = 0.01;
  /// BatchNorm folded with its running statistics, which stop updating;
  /// before, a training pass normalises with the batch's statistics as
  /// PyTorch's QAT modules do (the weights quantized at the running
  /// statistics' scale).
  bool batchnorm_frozen = false;
};

/// The state for `model` with no ranges yet. Throws std::invalid_argument
/// when `input_max_abs` is not positive.
QatState make_qat_state(const MobileNetV2& model, double input_max_abs);

/// Whether every range has been measured.
bool qat_ranges_measured(const QatState& state);

/// Logits of normalised `images` with fake quantization, in the int8
/// engine's scheme: the input as s8 codes; each convolution's weights with
/// BatchNorm folded, per output channel, symmetric, 7-bit dense and 8-bit
/// depthwise codes; each output after ReLU6 (u8 codes) or the residual add
/// (s8 codes) rounded half to even and saturated at its range; pooling and
/// the classifier in fp32. In training mode rounding passes gradients
/// straight through (inside the range) and the ranges update; in eval mode
/// it computes exactly the int8 network qat_quantized_network gives
/// (simulate_quantized: integer accumulation, fp32 scales). Throws
/// std::logic_error when a range has not been measured in eval mode.
torch::Tensor qat_forward(MobileNetV2& model,
                          QatState& state,
                          const torch::Tensor& images);

/// The int8 network: BatchNorm folded with the running statistics, weight
/// codes as quantize_network gives them, each activation's step from its
/// range (range / 255 after ReLU6, range / 127 otherwise), the logits' step
/// 1.25 x their range / 127. What `mnv2-export --format int8` writes from a
/// QAT checkpoint, without calibration.
QuantizedNetwork qat_quantized_network(const MobileNetV2& model,
                                       const QatState& state);

}  // namespace mnv2
