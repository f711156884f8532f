#pragma once

// The flatbuffer side of the TensorFlow Lite writer: tensors with their
// buffers and quantization, operators with their codes, and the model with
// one subgraph, its signature and metadata. Private to export/.

#include "tflite_schema_generated.h"

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace mnv2::tflite_export {

// Per-tensor (one step) or per-channel (along `dimension`) quantization.
struct Quantization {
  std::vector<float> scale;
  std::vector<int64_t> zero_point;
  int32_t dimension = 0;
};

// Builds one model: tensors and operators in the order the graph adds them.
class ModelBuilder {
 public:
  explicit ModelBuilder(bool int8);

  flatbuffers::FlatBufferBuilder& fbb() {
    return fbb_;
  }

  // A tensor; `data` (bytes) makes it a constant.
  int32_t tensor(const std::string& name,
                 const std::vector<int32_t>& shape,
                 tflite::TensorType type,
                 const Quantization* q = nullptr,
                 const void* data = nullptr,
                 size_t bytes = 0);

  template <class T>
  int32_t constant(const std::string& name,
                   const std::vector<int32_t>& shape,
                   tflite::TensorType type,
                   const std::vector<T>& values,
                   const Quantization* q = nullptr) {
    return tensor(
        name, shape, type, q, values.data(), values.size() * sizeof(T));
  }

  // An activation tensor: int8 with its step and zero point, or float32.
  int32_t activation(const std::string& name,
                     const std::vector<int32_t>& shape,
                     float step,
                     int64_t zero_point);

  void op(tflite::BuiltinOperator code,
          int32_t version,
          const std::vector<int32_t>& inputs,
          const std::vector<int32_t>& outputs,
          tflite::BuiltinOptions options_type = tflite::BuiltinOptions::NONE,
          flatbuffers::Offset<void> options = 0);

  // The finished model's bytes, `input` and `output` its signature's.
  std::string finish(int32_t input,
                     int32_t output,
                     const std::string& metadata_json);

 private:
  bool int8_;
  flatbuffers::FlatBufferBuilder fbb_{1 << 20};
  std::vector<flatbuffers::Offset<tflite::Buffer>> buffers_;
  std::vector<flatbuffers::Offset<tflite::Tensor>> tensors_;
  std::vector<flatbuffers::Offset<tflite::Operator>> operators_;
  std::vector<flatbuffers::Offset<tflite::OperatorCode>> opcodes_;
  std::map<std::pair<int32_t, int32_t>, uint32_t> opcode_index_;
};

}  // namespace mnv2::tflite_export
