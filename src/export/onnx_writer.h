#pragma once

// The ONNX writer sees no LibTorch header: LibTorch bundles protobuf headers
// of its own version, and this file is compiled against Debian's protobuf
// and libonnx. The network therefore arrives as plain vectors.

#include <mobilenetv2/engines/plain_network.h>

#include <cstdint>
#include <string>
#include <vector>

namespace mnv2::onnx_export {

/// The opset written: 10 keeps Clip's bounds as attributes, the form both
/// onnxruntime and OpenCV 4.6's DNN module load (OpenCV rejects opset-11 Clip
/// with bounds as inputs).
constexpr int64_t kOpset = 10;
/// An int8 network (plain::Network::input_scale > 0) is written with
/// QuantizeLinear/DequantizeLinear around each activation and per-channel
/// DequantizeLinear weights, which need opset 13.
constexpr int64_t kInt8Opset = 13;

/// Writes the network as an ONNX model with input "input" [batch, 3, H, W]
/// (batch, height and width dynamic) and output "logits" [batch, classes];
/// runs the ONNX checker on it first and stores `metadata` as key/value
/// metadata. Atomic: a temporary file is renamed. Throws std::runtime_error.
void write_onnx(
    const plain::Network& network,
    const std::vector<std::pair<std::string, std::string>>& metadata,
    const std::string& path);

/// Reads an int8 file written by write_onnx back (protobuf parse, the ONNX
/// checker) and compares every convolution's weight codes, weight steps and
/// activation step with `network`'s, bit for bit. Returns the number of
/// tensors compared; throws std::runtime_error naming the first that differs.
int64_t verify_int8_onnx(const plain::Network& network,
                         const std::string& path);

}  // namespace mnv2::onnx_export
