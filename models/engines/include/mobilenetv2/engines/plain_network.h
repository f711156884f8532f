#pragma once

// MobileNetV2 in inference form (BatchNorm folded) as plain vectors, for the
// units compiled apart from LibTorch's include folder: the ONNX writer
// (Debian's protobuf) and the oneDNN executor (Debian's oneDNN). LibTorch
// bundles headers of its own versions of both.

#include <cstdint>
#include <vector>

namespace mnv2 {

struct FoldedNetwork;
struct QuantizedNetwork;

namespace plain {

struct Conv {
  std::vector<float> weight;
  std::vector<int64_t> weight_shape;  ///< [out, in / groups, k, k]
  std::vector<float> bias;
  int64_t stride = 1;
  int64_t padding = 0;
  /// TensorFlow "SAME": padding from each input's size, the extra pixel
  /// after (ONNX auto_pad SAME_UPPER); `padding` is then 0.
  bool same_padding = false;
  int64_t groups = 1;
  bool relu6 = true;
  // Quantized networks only (Network::input_scale > 0):
  std::vector<int8_t> codes;         ///< the weight's codes, its layout
  std::vector<float> weight_scales;  ///< per output channel
  float output_scale = 0;            ///< u8 code step after ReLU6, else s8
};

struct Block {
  std::vector<Conv> convs;
  bool residual = false;
};

struct Network {
  std::vector<Block> blocks;
  std::vector<float> fc_weight;  ///< [classes, features], row-major
  std::vector<float> fc_bias;
  int64_t classes = 0;
  int64_t features = 0;
  /// > 0 for an int8 network: the s8 code step of the input image.
  float input_scale = 0;
};

/// A quantized convolution as integer runtimes hold it (TensorFlow Lite,
/// ONNX's QDQ): the codes and weight steps, and each bias as an int32 code
/// of step input x weight (the engine adds the fp32 bias; rounding it to
/// that step moves an output by under half a bias step). A channel whose
/// bias code would overflow int32 (near-zero weights, whose step is at the
/// floor of 1e-12) gets the smallest weight step at which it fits, and its
/// codes rounded again to that step: they were all but zero, and its output
/// is its bias.
struct IntegerConv {
  std::vector<int8_t> codes;  ///< the weight's layout
  std::vector<float> weight_scales;
  std::vector<int32_t> bias;
  int64_t widened = 0;  ///< channels whose weight step grew
};
IntegerConv integer_conv(const Conv& conv, float input_step);

/// The step integer runtimes round a residual block's branch to before the
/// add (their add takes two quantized inputs): the engine adds in fp32 and
/// rounds the sum once. This step holds any branch output whose sum with
/// the block input is within the output's range (|branch| <= |sum| +
/// |input|).
inline float residual_branch_step(float output_step, float input_step) {
  return output_step + input_step;
}

}  // namespace plain

/// Copies a folded network (any device, any float dtype) into plain fp32
/// vectors.
plain::Network to_plain_network(const FoldedNetwork& folded);
/// The same for a quantized network: codes and scales besides the fp32
/// weights.
plain::Network to_plain_network(const QuantizedNetwork& quantized);

}  // namespace mnv2
