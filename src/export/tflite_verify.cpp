#include "export/tflite_layout.h"
#include "export/tflite_writer.h"
#include "tflite_schema_generated.h"

#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace mnv2::tflite_export {

namespace {

using tflite::BuiltinOperator;

size_t element_bytes(tflite::TensorType type) {
  switch (type) {
    case tflite::TensorType::FLOAT32:
    case tflite::TensorType::INT32:
      return 4;
    case tflite::TensorType::UINT8:
    case tflite::TensorType::INT8:
      return 1;
  }
  throw std::runtime_error("a tensor of an unknown type");
}

std::vector<int32_t> shape_of(const tflite::Tensor& t) {
  return t.shape() == nullptr
             ? std::vector<int32_t>{}
             : std::vector<int32_t>(t.shape()->begin(), t.shape()->end());
}

// Reads the model and checks what holds for any file we write.
class ModelReader {
 public:
  ModelReader(const std::string& path) : path_(path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream bytes;
    bytes << in.rdbuf();
    bytes_ = bytes.str();
    flatbuffers::Verifier verifier(
        reinterpret_cast<const uint8_t*>(bytes_.data()), bytes_.size());
    if (!in || !tflite::VerifyModelBuffer(verifier)) {
      fail("is not a valid TensorFlow Lite flatbuffer");
    }
    model_ = tflite::GetModel(bytes_.data());
    if (model_->version() != 3 || model_->subgraphs() == nullptr ||
        model_->subgraphs()->size() != 1 || model_->buffers() == nullptr ||
        model_->operator_codes() == nullptr) {
      fail("is not a schema-3 model with one subgraph");
    }
    graph_ = model_->subgraphs()->Get(0);
    if (graph_->tensors() == nullptr || graph_->operators() == nullptr) {
      fail("has no tensors or operators");
    }
    for (const auto* t : *graph_->tensors()) {
      if (t->buffer() >= model_->buffers()->size()) {
        fail("tensor '" + t->name()->str() + "' names a missing buffer");
      }
      const auto* data = model_->buffers()->Get(t->buffer())->data();
      if (data != nullptr && data->size() > 0) {
        size_t elements = 1;
        for (const auto d : shape_of(*t)) {
          elements *= static_cast<size_t>(d);
        }
        if (data->size() != elements * element_bytes(t->type())) {
          fail("tensor '" + t->name()->str() + "' has " +
               std::to_string(data->size()) + " bytes for its shape");
        }
      }
    }
    for (const auto* op : *graph_->operators()) {
      if (op->opcode_index() >= model_->operator_codes()->size()) {
        fail("an operator names a missing operator code");
      }
      for (const auto* list : {op->inputs(), op->outputs()}) {
        for (const auto i : *list) {
          if (i < 0 || static_cast<uint32_t>(i) >= graph_->tensors()->size()) {
            fail("an operator names a missing tensor");
          }
        }
      }
    }
  }

  [[noreturn]] void fail(const std::string& what) const {
    throw std::runtime_error("'" + path_ + "' " + what);
  }

  const tflite::SubGraph& graph() const {
    return *graph_;
  }
  const tflite::Tensor& tensor(int32_t i) const {
    return *graph_->tensors()->Get(static_cast<uint32_t>(i));
  }
  BuiltinOperator code(const tflite::Operator& op) const {
    return model_->operator_codes()->Get(op.opcode_index())->builtin_code();
  }

  // Whether constant tensor `i` holds exactly `values`.
  template <class T>
  bool holds(int32_t i, const std::vector<T>& values) const {
    const auto* data = model_->buffers()->Get(tensor(i).buffer())->data();
    return data != nullptr && data->size() == values.size() * sizeof(T) &&
           std::memcmp(data->data(), values.data(), data->size()) == 0;
  }

 private:
  std::string path_;
  std::string bytes_;
  const tflite::Model* model_ = nullptr;
  const tflite::SubGraph* graph_ = nullptr;
};

std::vector<float> scales_of(const tflite::Tensor& t) {
  const auto* q = t.quantization();
  return q == nullptr || q->scale() == nullptr
             ? std::vector<float>{}
             : std::vector<float>(q->scale()->begin(), q->scale()->end());
}

}  // namespace

TfliteCheck verify_tflite(const plain::Network& network,
                          const TfliteOptions& options,
                          const std::string& path) {
  const ModelReader model(path);
  const auto& graph = model.graph();
  const bool int8 = network.input_scale > 0;
  TfliteCheck check;
  check.tensors = graph.tensors()->size();
  check.operators = graph.operators()->size();
  // The convolutions, in the network's order, and the spatial size each
  // input has, as TFLite computes it.
  std::vector<const plain::Conv*> convs;
  std::vector<bool> before_add;
  for (const auto& block : network.blocks) {
    for (size_t c = 0; c < block.convs.size(); ++c) {
      convs.push_back(&block.convs[c]);
      before_add.push_back(block.residual && c + 1 == block.convs.size());
    }
  }
  size_t next_conv = 0;
  for (const auto* op : *graph.operators()) {
    const auto code = model.code(*op);
    const auto& in = model.tensor(op->inputs()->Get(0));
    const auto& out = model.tensor(op->outputs()->Get(0));
    const auto in_shape = shape_of(in);
    auto expected = in_shape;  // QUANTIZE, DEQUANTIZE, ADD
    if (code == BuiltinOperator::PAD) {
      const auto p = (shape_of(out)[1] - in_shape[1]) / 2;
      const std::vector<int32_t> pads{0, 0, p, p, p, p, 0, 0};
      if (!model.holds(op->inputs()->Get(1), pads)) {
        model.fail("has a PAD that pads unevenly");
      }
      expected = {
          in_shape[0], in_shape[1] + 2 * p, in_shape[2] + 2 * p, in_shape[3]};
    } else if (code == BuiltinOperator::CONV_2D ||
               code == BuiltinOperator::DEPTHWISE_CONV_2D) {
      if (next_conv == convs.size()) {
        model.fail("has more convolutions than the network");
      }
      const auto& conv = *convs[next_conv++];
      const auto weight = op->inputs()->Get(1);
      const auto bias = op->inputs()->Get(2);
      bool same_weights = false;
      if (int8) {
        const auto q = plain::integer_conv(conv, scales_of(in).at(0));
        same_weights =
            model.holds(weight, tflite_weight_layout(q.codes, conv)) &&
            scales_of(model.tensor(weight)) == q.weight_scales &&
            model.holds(bias, q.bias);
        check.widened += q.widened;
      } else {
        same_weights =
            model.holds(weight, tflite_weight_layout(conv.weight, conv)) &&
            model.holds(bias, conv.bias);
      }
      if (!same_weights ||
          shape_of(model.tensor(weight)) != tflite_weight_shape(conv)) {
        model.fail("convolution " + std::to_string(next_conv - 1) +
                   " differs from the network's weights");
      }
      // VALID after an explicit PAD, else SAME or VALID as conv_padding.
      const auto* o = op->builtin_options_as_Conv2DOptions();
      const auto* d = op->builtin_options_as_DepthwiseConv2DOptions();
      const bool same = o != nullptr ? o->padding() == tflite::Padding::SAME
                                     : d->padding() == tflite::Padding::SAME;
      const auto stride = o != nullptr ? o->stride_w() : d->stride_w();
      const auto k = static_cast<int32_t>(conv.weight_shape[2]);
      const auto size = same ? (in_shape[1] + stride - 1) / stride
                             : (in_shape[1] - k) / stride + 1;
      expected = {
          in_shape[0], size, size, static_cast<int32_t>(conv.bias.size())};
      check.compared += 2;
      // Each activation's step is the int8 file's (a residual sum's is
      // checked at its ADD).
      if (int8 && !before_add[next_conv - 1]) {
        if (scales_of(out) != std::vector<float>{conv.output_scale}) {
          model.fail("convolution " + std::to_string(next_conv - 1) +
                     " has another output step than the network's");
        }
        ++check.compared;
      }
    } else if (code == BuiltinOperator::ADD && int8) {
      if (scales_of(out) !=
          std::vector<float>{convs[next_conv - 1]->output_scale}) {
        model.fail("a residual sum has another step than the network's");
      }
      ++check.compared;
    } else if (code == BuiltinOperator::MEAN) {
      expected = {in_shape[0], in_shape[3]};
    } else if (code == BuiltinOperator::FULLY_CONNECTED) {
      const auto weight = op->inputs()->Get(1);
      const bool same_weights =
          int8 ? model.holds(weight, classifier_codes(network).codes)
               : model.holds(weight, network.fc_weight) &&
                     model.holds(op->inputs()->Get(2), network.fc_bias);
      if (!same_weights) {
        model.fail("has a classifier that differs from the network's");
      }
      expected = {in_shape[0], static_cast<int32_t>(network.classes)};
      check.compared += int8 ? 1 : 2;
    }
    if (shape_of(out) != expected) {
      model.fail("has an operator whose output '" + out.name()->str() +
                 "' has the wrong shape");
    }
  }
  if (next_conv != convs.size()) {
    model.fail("has fewer convolutions than the network");
  }
  const auto& input = model.tensor(graph.inputs()->Get(0));
  const std::vector<int32_t> image{1,
                                   static_cast<int32_t>(options.image_size),
                                   static_cast<int32_t>(options.image_size),
                                   3};
  if (shape_of(input) != image) {
    model.fail("has an input of the wrong shape");
  }
  return check;
}

}  // namespace mnv2::tflite_export
