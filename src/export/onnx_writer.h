#pragma once

// The ONNX writer sees no LibTorch header: LibTorch bundles protobuf headers
// of its own version, and this file is compiled against Debian's protobuf
// and libonnx. Tensors therefore arrive as plain vectors.

#include <cstdint>
#include <string>
#include <vector>

namespace mnv2::onnx_export {

struct Conv {
  std::vector<float> weight;
  std::vector<int64_t> weight_shape;  ///< [out, in / groups, k, k]
  std::vector<float> bias;
  int64_t stride = 1;
  int64_t padding = 0;
  /// TensorFlow "SAME" (auto_pad SAME_UPPER: the extra pixel after).
  bool same_padding = false;
  int64_t groups = 1;
  bool relu6 = true;
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
};

/// The opset written: 10 keeps Clip's bounds as attributes, the form both
/// onnxruntime and OpenCV 4.6's DNN module load (OpenCV rejects opset-11 Clip
/// with bounds as inputs).
constexpr int64_t kOpset = 10;

/// Writes the network as an ONNX model with input "input" [batch, 3, H, W]
/// (batch, height and width dynamic) and output "logits" [batch, classes];
/// runs the ONNX checker on it first and stores `metadata` as key/value
/// metadata. Atomic: a temporary file is renamed. Throws std::runtime_error.
void write_onnx(
    const Network& network,
    const std::vector<std::pair<std::string, std::string>>& metadata,
    const std::string& path);

}  // namespace mnv2::onnx_export
