#pragma once

// The TensorFlow Lite writer sees no LibTorch header, like the ONNX writer:
// the network arrives as plain vectors, and the file is built with Debian's
// flatbuffers from the schema subset in tflite_schema.fbs.

#include <mobilenetv2/engines/plain_network.h>

#include <cstdint>
#include <stdexcept>
#include <string>

namespace mnv2::tflite_export {

/// The element type of an int8 model's input and output tensors. A float
/// model's are always float32.
enum class IoType { kInt8, kUint8, kFloat32 };

/// "int8", "uint8", "float32"; throws std::invalid_argument otherwise.
inline IoType io_type_from_name(const std::string& name) {
  if (name == "int8") {
    return IoType::kInt8;
  }
  if (name == "uint8") {
    return IoType::kUint8;
  }
  if (name == "float32") {
    return IoType::kFloat32;
  }
  throw std::invalid_argument("must be int8, uint8 or float32, got '" + name +
                              "'");
}

inline std::string io_type_name(IoType type) {
  switch (type) {
    case IoType::kInt8:
      return "int8";
    case IoType::kUint8:
      return "uint8";
    case IoType::kFloat32:
      return "float32";
  }
  return "?";
}

struct TfliteOptions {
  int64_t image_size = 224;  ///< the input's height and width
  /// Stored as the model's metadata entry "mnv2_metadata" (the weights'
  /// preprocessing and class names, as the sidecar JSON).
  std::string metadata_json;
  /// int8 networks: the input's and the logits' element type. int8 and
  /// uint8 carry the codes (a uint8 code is the int8 code plus 128); float32
  /// adds QUANTIZE and DEQUANTIZE operators around the integer graph.
  IoType io_type = IoType::kInt8;
  /// int8 networks: the logits' code step (the int8 file stores it).
  float logits_scale = 0;
};

/// Writes `network` as a TensorFlow Lite model (schema version 3) with one
/// subgraph: input "input" [1, size, size, 3] NHWC (the normalised image),
/// output "logits" [1, classes], BatchNorm already folded, ReLU6 fused into
/// the convolutions, an explicit PAD where PyTorch's symmetric padding is
/// not TensorFlow's SAME, and a "serving_default" signature. A float
/// network (input_scale 0) is written in float32; an int8 one in TFLite's
/// full-integer scheme: int8 per-channel symmetric weights (the network's
/// codes), int8 activations with a zero point (ReLU6 outputs: -128), int32
/// biases of step input x weight. Atomic: a temporary file is renamed.
/// Throws std::runtime_error.
void write_tflite(const plain::Network& network,
                  const TfliteOptions& options,
                  const std::string& path);

/// What reading a written file back found.
struct TfliteCheck {
  int64_t tensors = 0;
  int64_t operators = 0;
  int64_t compared = 0;  ///< constant tensors equal to the network's
  /// Weight channels given a larger step so that their bias fits int32
  /// (plain::integer_conv).
  int64_t widened = 0;
};

/// Reads the file back: the flatbuffers verifier, one subgraph, every
/// operator's tensors in range, every constant tensor's buffer as large as
/// its shape, the activations' shapes as TFLite computes them from each
/// operator, and every weight, bias, code and step equal to `network`'s
/// (transposed to TFLite's layouts; int8: as plain::integer_conv gives
/// them) bit for bit. Throws std::runtime_error
/// naming the first difference.
TfliteCheck verify_tflite(const plain::Network& network,
                          const TfliteOptions& options,
                          const std::string& path);

}  // namespace mnv2::tflite_export
