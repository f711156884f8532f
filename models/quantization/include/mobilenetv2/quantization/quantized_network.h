#pragma once

#include <mobilenetv2/nn/folded_network.h>
#include <mobilenetv2/quantization/residual_add.h>
#include <mobilenetv2/torch_files/state_dict.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace mnv2 {

/// Weight codes of dense convolutions stay in [-63, 63] (7 bits): on CPUs
/// without VNNI, oneDNN sums pairs of u8 x s8 products in 16 bits, and only
/// 7-bit weights keep those sums exact (with an s8 source the engine passes
/// the codes doubled, which oneDNN halves back without loss). Depthwise
/// convolutions are widened to 16 bits before multiplying: 8-bit codes,
/// [-127, 127].
constexpr int64_t kDenseCodeMax = 63;
constexpr int64_t kDepthwiseCodeMax = 127;

/// The steps (weight and activation scales) a calibration writes and a
/// reader accepts: a step of 1e-45 (denormal, products flush to zero) or
/// 1e38 (codes overflow to inf) runs but computes garbage. A weight channel
/// or an activation whose range would need a smaller step is all zeros at
/// int8's resolution and gets a unit step; larger ones are saturated.
constexpr double kMinScale = 1e-12;
constexpr double kMaxScale = 1e6;

/// The logits' step covers this many times their largest |value| seen in
/// calibration: an image scored higher than any of them keeps its top logit
/// unsaturated.
constexpr double kLogitsHeadroom = 1.25;

/// One convolution's int8 form.
struct QuantizedConv {
  torch::Tensor codes;         ///< int8, the weight's shape
  torch::Tensor weight_scale;  ///< fp32 [out]: weight = codes * scale
  /// The output's code step: u8 codes (0..255) after ReLU6, s8 codes
  /// (-128..127, symmetric) otherwise. A residual block's last convolution
  /// quantizes the sum with its input.
  double output_scale = 0;
};

/// MobileNetV2 quantized after training: the folded network (its conv
/// weights are the dequantized codes, its biases fp32, its classifier fp32)
/// plus each convolution's codes and scales, in order, and the s8 step of
/// the normalised input image. Activations are per tensor, weights per
/// output channel, no zero points.
struct QuantizedNetwork {
  FoldedNetwork network;
  std::vector<QuantizedConv> convs;  ///< block by block, conv by conv
  double input_scale = 0;
  /// The s8 code step of the logits, for engines that quantize the
  /// classifier too (TensorFlow Lite's full-integer models); ours computes
  /// it in fp32. 0 in files written before it was measured.
  double logits_scale = 0;
};

/// Whether a convolution is depthwise (one input channel per group, as many
/// groups as outputs).
bool is_depthwise(const FoldedConv& conv);

/// The largest code a convolution's weights may use.
int64_t code_max(const FoldedConv& conv);

/// A folded convolution's weight codes and per-channel steps (symmetric,
/// step = the channel's largest |weight| / code_max), its output step 0.
QuantizedConv quantize_weights(const FoldedConv& conv);

/// The quantized network as a self-describing state_dict ("quantization.*",
/// "convs.<n>.*" with geometry, "classifier.*"), which Python's torch.load
/// reads.
StateDict quantized_to_state_dict(const QuantizedNetwork& net);

/// Whether a state_dict holds a quantized network.
bool is_quantized_state_dict(const StateDict& state);

/// Reads and checks a quantized network: shapes that chain, codes in range,
/// scales in [kMinScale, kMaxScale], counts that match. Throws WeightsError
/// naming `origin` and the entry.
QuantizedNetwork quantized_from_state_dict(const StateDict& state,
                                           const std::string& origin);

/// The quantized network computed with LibTorch in fp32, each activation
/// rounded to its codes (half to even) and saturated: the reference the
/// calibration measures against and the engine where oneDNN is absent.
/// Equal to integer arithmetic except where fp32 rounding moves a value
/// across a rounding boundary (then by one code). `images`: normalised
/// [N, 3, H, W]. Returns logits, or the pooled features if `features`.
/// `visit(n, activation)`, when given, sees each convolution's output as
/// the network keeps it (its codes times its step, after ReLU6 and the
/// residual add). `residual_add`: as the engine it is compared with rounds
/// (InferenceEngine::residual_add()).
torch::Tensor simulate_quantized(
    const QuantizedNetwork& net,
    const torch::Tensor& images,
    bool features = false,
    const std::function<void(size_t, const torch::Tensor&)>& visit = {},
    ResidualAdd residual_add = ResidualAdd::kFusedMultiplyAdd);

}  // namespace mnv2
