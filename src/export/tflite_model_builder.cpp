#include "export/tflite_model_builder.h"

#include <algorithm>

namespace mnv2::tflite_export {

using flatbuffers::Offset;
using tflite::BuiltinOperator;
using tflite::TensorType;

ModelBuilder::ModelBuilder(bool int8) : int8_(int8) {
  buffers_.push_back(tflite::CreateBuffer(fbb_));  // 0: no data
}

int32_t ModelBuilder::tensor(const std::string& name,
                             const std::vector<int32_t>& shape,
                             TensorType type,
                             const Quantization* q,
                             const void* data,
                             size_t bytes) {
  uint32_t buffer = 0;
  if (data != nullptr) {
    fbb_.ForceVectorAlignment(bytes, 1, 16);
    const auto vector =
        fbb_.CreateVector(static_cast<const uint8_t*>(data), bytes);
    buffers_.push_back(tflite::CreateBuffer(fbb_, vector));
    buffer = static_cast<uint32_t>(buffers_.size() - 1);
  }
  Offset<tflite::QuantizationParameters> quantization = 0;
  if (q != nullptr) {
    quantization = tflite::CreateQuantizationParametersDirect(
        fbb_, &q->scale, &q->zero_point, q->dimension);
  }
  auto signature = shape;
  signature[0] = data == nullptr ? -1 : shape[0];  // any batch
  tensors_.push_back(tflite::CreateTensorDirect(fbb_,
                                                &shape,
                                                type,
                                                buffer,
                                                name.c_str(),
                                                quantization,
                                                false,
                                                &signature));
  return static_cast<int32_t>(tensors_.size() - 1);
}

int32_t ModelBuilder::activation(const std::string& name,
                                 const std::vector<int32_t>& shape,
                                 float step,
                                 int64_t zero_point) {
  if (!int8_) {
    return tensor(name, shape, TensorType::FLOAT32);
  }
  const Quantization q{{step}, {zero_point}, 0};
  return tensor(name, shape, TensorType::INT8, &q);
}

void ModelBuilder::op(BuiltinOperator code,
                      int32_t version,
                      const std::vector<int32_t>& inputs,
                      const std::vector<int32_t>& outputs,
                      tflite::BuiltinOptions options_type,
                      Offset<void> options) {
  const auto key = std::pair{static_cast<int32_t>(code), version};
  auto found = opcode_index_.find(key);
  if (found == opcode_index_.end()) {
    found = opcode_index_.emplace(key, static_cast<uint32_t>(opcodes_.size()))
                .first;
    opcodes_.push_back(tflite::CreateOperatorCode(
        fbb_,
        static_cast<int8_t>(std::min<int32_t>(key.first, 127)),
        version,
        code));
  }
  operators_.push_back(tflite::CreateOperatorDirect(
      fbb_, found->second, &inputs, &outputs, options_type, options));
}

std::string ModelBuilder::finish(int32_t input,
                                 int32_t output,
                                 const std::string& metadata_json) {
  const std::vector<int32_t> inputs{input};
  const std::vector<int32_t> outputs{output};
  const std::vector<Offset<tflite::SubGraph>> subgraphs{
      tflite::CreateSubGraphDirect(
          fbb_, &tensors_, &inputs, &outputs, &operators_, "main")};
  const std::vector<Offset<tflite::TensorMap>> signature_inputs{
      tflite::CreateTensorMapDirect(
          fbb_, "input", static_cast<uint32_t>(input))};
  const std::vector<Offset<tflite::TensorMap>> signature_outputs{
      tflite::CreateTensorMapDirect(
          fbb_, "logits", static_cast<uint32_t>(output))};
  const std::vector<Offset<tflite::SignatureDef>> signatures{
      tflite::CreateSignatureDefDirect(
          fbb_, &signature_inputs, &signature_outputs, "serving_default", 0)};
  std::vector<Offset<tflite::Metadata>> metadata;
  if (!metadata_json.empty()) {
    fbb_.ForceVectorAlignment(metadata_json.size(), 1, 16);
    const auto bytes = fbb_.CreateVector(
        reinterpret_cast<const uint8_t*>(metadata_json.data()),
        metadata_json.size());
    buffers_.push_back(tflite::CreateBuffer(fbb_, bytes));
    metadata.push_back(tflite::CreateMetadataDirect(
        fbb_, "mnv2_metadata", static_cast<uint32_t>(buffers_.size() - 1)));
  }
  const auto model = tflite::CreateModelDirect(fbb_,
                                               3,
                                               &opcodes_,
                                               &subgraphs,
                                               "mnv2-export",
                                               &buffers_,
                                               &metadata,
                                               &signatures);
  tflite::FinishModelBuffer(fbb_, model);
  return {reinterpret_cast<const char*>(fbb_.GetBufferPointer()),
          fbb_.GetSize()};
}

}  // namespace mnv2::tflite_export
