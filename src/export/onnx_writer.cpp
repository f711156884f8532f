#include "export/onnx_writer.h"

#include <mobilenetv2/util/atomic_file.h>

#include <onnx/checker.h>
#include <onnx/onnx_pb.h>

#include <cctype>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>

namespace mnv2::onnx_export {

namespace {

class GraphBuilder {
 public:
  explicit GraphBuilder(onnx::GraphProto* graph) : graph_(graph) {}

  std::string initializer(const std::string& name,
                          const std::vector<float>& values,
                          const std::vector<int64_t>& shape) {
    auto* tensor = graph_->add_initializer();
    tensor->set_name(name);
    tensor->set_data_type(onnx::TensorProto::FLOAT);
    for (auto d : shape) {
      tensor->add_dims(d);
    }
    tensor->set_raw_data(values.data(), values.size() * sizeof(float));
    return name;
  }

  // An integer tensor (int8, uint8 or int32 elements in `values`).
  template <class T>
  std::string integers(const std::string& name,
                       onnx::TensorProto::DataType type,
                       const std::vector<T>& values,
                       const std::vector<int64_t>& shape) {
    auto* tensor = graph_->add_initializer();
    tensor->set_name(name);
    tensor->set_data_type(type);
    for (auto d : shape) {
      tensor->add_dims(d);
    }
    tensor->set_raw_data(values.data(), values.size() * sizeof(T));
    return name;
  }

  onnx::NodeProto* node(const std::string& op,
                        const std::vector<std::string>& inputs,
                        const std::string& output) {
    auto* n = graph_->add_node();
    n->set_op_type(op);
    n->set_name(op + "_" + std::to_string(graph_->node_size()));
    for (const auto& in : inputs) {
      n->add_input(in);
    }
    n->add_output(output);
    return n;
  }

  std::string fresh(const std::string& stem) {
    return stem + "_" + std::to_string(counter_++);
  }

 private:
  onnx::GraphProto* graph_;
  int counter_ = 0;
};

void set_ints(onnx::NodeProto* node,
              const std::string& name,
              const std::vector<int64_t>& values) {
  auto* a = node->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INTS);
  for (auto v : values) {
    a->add_ints(v);
  }
}

void set_int(onnx::NodeProto* node, const std::string& name, int64_t value) {
  auto* a = node->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(value);
}

void set_float(onnx::NodeProto* node, const std::string& name, float value) {
  auto* a = node->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::FLOAT);
  a->set_f(value);
}

void describe(onnx::ValueInfoProto* value,
              const std::string& name,
              const std::vector<std::string>& dims) {
  value->set_name(name);
  auto* type = value->mutable_type()->mutable_tensor_type();
  type->set_elem_type(onnx::TensorProto::FLOAT);
  auto* shape = type->mutable_shape();
  for (const auto& d : dims) {
    auto* dim = shape->add_dim();
    if (!d.empty() && std::isdigit(static_cast<unsigned char>(d[0]))) {
      dim->set_dim_value(std::stoll(d));
    } else {
      dim->set_dim_param(d);
    }
  }
}

// An activation as codes: QuantizeLinear's output and its parameters.
struct Codes {
  std::string codes, scale, zero, real;
};

// QuantizeLinear then DequantizeLinear: `x` rounded to codes of `step` and
// back to real values (`real`). Codes are u8 throughout, onnxruntime's fast
// kind on x86: the engine's u8 codes after ReLU6 with zero point 0, its
// symmetric s8 codes plus 128 with zero point 128 (the same values).
Codes quantize_dequantize(GraphBuilder& g,
                          const std::string& x,
                          float step,
                          bool after_relu6) {
  Codes q{g.fresh("codes"), g.initializer(g.fresh("step"), {step}, {}), "", ""};
  q.zero = g.integers<uint8_t>(g.fresh("zero_point"),
                               onnx::TensorProto::UINT8,
                               {static_cast<uint8_t>(after_relu6 ? 0 : 128)},
                               {});
  g.node("QuantizeLinear", {x, q.scale, q.zero}, q.codes);
  q.real = g.fresh("dequantized");
  g.node("DequantizeLinear", {q.codes, q.scale, q.zero}, q.real);
  return q;
}

// Another DequantizeLinear of the same codes: onnxruntime fuses a
// DequantizeLinear into an integer operator only when that operator is its
// one consumer (a block input feeds the expansion and the residual add).
std::string dequantize_again(GraphBuilder& g, const Codes& q) {
  const auto real = g.fresh("dequantized");
  g.node("DequantizeLinear", {q.codes, q.scale, q.zero}, real);
  return real;
}

// A quantized convolution's weights and bias as DequantizeLinear of int8
// codes (per output channel) and of int32 codes of step input x weight
// step, ONNX's QDQ convention (the engine adds the fp32 bias; rounding it
// to that step moves outputs by under half a bias step).
std::pair<std::string, std::string> dequantized_parameters(
    GraphBuilder& g,
    const std::string& prefix,
    const plain::Conv& conv,
    float input_step) {
  const auto out = static_cast<int64_t>(conv.bias.size());
  const auto q = plain::integer_conv(conv, input_step);
  const auto w_scale =
      g.initializer(prefix + ".weight_scale", q.weight_scales, {out});
  const auto w_zero =
      g.integers<int8_t>(prefix + ".weight_zero_point",
                         onnx::TensorProto::INT8,
                         std::vector<int8_t>(static_cast<size_t>(out), 0),
                         {out});
  const auto w_codes = g.integers<int8_t>(prefix + ".weight_codes",
                                          onnx::TensorProto::INT8,
                                          q.codes,
                                          conv.weight_shape);
  auto* w = g.node(
      "DequantizeLinear", {w_codes, w_scale, w_zero}, prefix + ".weight");
  set_int(w, "axis", 0);
  std::vector<float> bias_scale;
  for (const auto scale : q.weight_scales) {
    bias_scale.push_back(input_step * scale);
  }
  const auto b_scale = g.initializer(prefix + ".bias_scale", bias_scale, {out});
  const auto b_zero =
      g.integers<int32_t>(prefix + ".bias_zero_point",
                          onnx::TensorProto::INT32,
                          std::vector<int32_t>(static_cast<size_t>(out), 0),
                          {out});
  const auto b_codes = g.integers<int32_t>(
      prefix + ".bias_codes", onnx::TensorProto::INT32, q.bias, {out});
  auto* b =
      g.node("DequantizeLinear", {b_codes, b_scale, b_zero}, prefix + ".bias");
  set_int(b, "axis", 0);
  return {prefix + ".weight", prefix + ".bias"};
}

}  // namespace

void write_onnx(
    const plain::Network& network,
    const std::vector<std::pair<std::string, std::string>>& metadata,
    const std::string& path) {
  onnx::ModelProto model;
  model.set_ir_version(onnx::IR_VERSION);
  model.set_producer_name("mnv2-export");
  model.set_model_version(1);
  const bool int8 = network.input_scale > 0;
  auto* opset = model.add_opset_import();
  opset->set_domain("");
  opset->set_version(int8 ? kInt8Opset : kOpset);
  for (const auto& [key, value] : metadata) {
    auto* entry = model.add_metadata_props();
    entry->set_key(key);
    entry->set_value(value);
  }
  auto* graph = model.mutable_graph();
  graph->set_name("mobilenet_v2");
  GraphBuilder g(graph);
  std::string x = "input";
  float step = network.input_scale;
  Codes codes;  // int8: the activation `x` holds, as codes
  if (int8) {
    codes = quantize_dequantize(g, x, step, false);
    x = codes.real;
  }
  for (size_t b = 0; b < network.blocks.size(); ++b) {
    const auto& block = network.blocks[b];
    const float block_step = step;
    const Codes block_codes = codes;
    std::string y = x;
    for (size_t c = 0; c < block.convs.size(); ++c) {
      const auto& conv = block.convs[c];
      const std::string prefix =
          "features." + std::to_string(b) + ".conv" + std::to_string(c);
      const auto [w, bias] =
          int8 ? dequantized_parameters(g, prefix, conv, step)
               : std::pair{
                     g.initializer(
                         prefix + ".weight", conv.weight, conv.weight_shape),
                     g.initializer(prefix + ".bias",
                                   conv.bias,
                                   {static_cast<int64_t>(conv.bias.size())})};
      const auto out = g.fresh("conv");
      auto* node = g.node("Conv", {y, w, bias}, out);
      const int64_t k = conv.weight_shape[2];
      set_ints(node, "kernel_shape", {k, k});
      set_ints(node, "strides", {conv.stride, conv.stride});
      if (conv.same_padding) {
        // From the input's size at run time, as TensorFlow's SAME.
        auto* pad = node->add_attribute();
        pad->set_name("auto_pad");
        pad->set_type(onnx::AttributeProto::STRING);
        pad->set_s("SAME_UPPER");
      } else {
        set_ints(node,
                 "pads",
                 {conv.padding, conv.padding, conv.padding, conv.padding});
      }
      set_ints(node, "dilations", {1, 1});
      set_int(node, "group", conv.groups);
      y = out;
      if (conv.relu6) {
        const auto clipped = g.fresh("relu6");
        if (int8) {
          // Opset 13: the bounds are inputs.
          g.node("Clip",
                 {y,
                  g.initializer(g.fresh("min"), {0.f}, {}),
                  g.initializer(g.fresh("max"), {6.f}, {})},
                 clipped);
        } else {
          auto* clip = g.node("Clip", {y}, clipped);
          set_float(clip, "min", 0.0f);
          set_float(clip, "max", 6.0f);
        }
        y = clipped;
      }
      if (block.residual && c + 1 == block.convs.size()) {
        if (int8) {
          // The branch as codes too, so that onnxruntime runs the
          // convolution and the add on integers (QLinearConv, QLinearAdd).
          y = quantize_dequantize(
                  g,
                  y,
                  plain::residual_branch_step(conv.output_scale, block_step),
                  false)
                  .real;
        }
        const auto sum = g.fresh("add");
        g.node("Add", {int8 ? dequantize_again(g, block_codes) : x, y}, sum);
        y = sum;
      }
      if (int8) {
        // Each activation as the engine keeps it: codes of its step.
        step = conv.output_scale;
        codes = quantize_dequantize(g, y, step, conv.relu6);
        y = codes.real;
      }
    }
    x = y;
  }
  g.node("GlobalAveragePool", {x}, "pooled");
  set_int(g.node("Flatten", {"pooled"}, "embedding"), "axis", 1);
  const auto fc_w = g.initializer("classifier.1.weight",
                                  network.fc_weight,
                                  {network.classes, network.features});
  const auto fc_b =
      g.initializer("classifier.1.bias", network.fc_bias, {network.classes});
  auto* gemm = g.node("Gemm", {"embedding", fc_w, fc_b}, "logits");
  set_int(gemm, "transB", 1);
  describe(graph->add_input(), "input", {"batch", "3", "height", "width"});
  describe(graph->add_output(),
           "logits",
           {"batch", std::to_string(network.classes)});

  try {
    onnx::checker::check_model(model);
  } catch (const std::exception& e) {
    throw std::runtime_error(
        std::string("the ONNX checker rejected the model: ") + e.what());
  }
  std::string bytes;
  if (!model.SerializeToString(&bytes)) {
    throw std::runtime_error("cannot serialise the ONNX model");
  }
  write_file_atomically(path, bytes);
}

namespace {

template <class T>
bool same_bytes(const onnx::TensorProto& tensor, const std::vector<T>& values) {
  const auto& raw = tensor.raw_data();
  return raw.size() == values.size() * sizeof(T) &&
         std::memcmp(raw.data(), values.data(), raw.size()) == 0;
}

}  // namespace

int64_t verify_int8_onnx(const plain::Network& network,
                         const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream bytes;
  bytes << in.rdbuf();
  onnx::ModelProto model;
  if (!in || !model.ParseFromString(bytes.str())) {
    throw std::runtime_error("cannot read '" + path + "' back as ONNX");
  }
  onnx::checker::check_model(model);
  std::map<std::string, const onnx::TensorProto*> tensors;
  for (const auto& t : model.graph().initializer()) {
    tensors[t.name()] = &t;
  }
  std::vector<float> steps;  // every activation step, in order
  for (const auto& node : model.graph().node()) {
    if (node.op_type() == "QuantizeLinear") {
      const auto* step = tensors.at(node.input(1));
      float value = 0;
      std::memcpy(&value, step->raw_data().data(), sizeof(float));
      steps.push_back(value);
    }
  }
  std::vector<float> expected_steps{network.input_scale};
  int64_t compared = 0;
  for (size_t b = 0; b < network.blocks.size(); ++b) {
    const float block_step = expected_steps.back();
    for (size_t c = 0; c < network.blocks[b].convs.size(); ++c) {
      const auto& conv = network.blocks[b].convs[c];
      const auto q = plain::integer_conv(conv, expected_steps.back());
      const std::string prefix =
          "features." + std::to_string(b) + ".conv" + std::to_string(c);
      const auto codes = tensors.find(prefix + ".weight_codes");
      const auto scales = tensors.find(prefix + ".weight_scale");
      if (codes == tensors.end() || scales == tensors.end() ||
          !same_bytes(*codes->second, q.codes) ||
          !same_bytes(*scales->second, q.weight_scales)) {
        throw std::runtime_error("'" + path + "': " + prefix +
                                 " differs from the quantized network");
      }
      compared += 2;
      if (network.blocks[b].residual &&
          c + 1 == network.blocks[b].convs.size()) {
        expected_steps.push_back(
            plain::residual_branch_step(conv.output_scale, block_step));
      }
      expected_steps.push_back(conv.output_scale);
    }
  }
  if (steps != expected_steps) {
    throw std::runtime_error("'" + path +
                             "': the activation steps differ from the "
                             "quantized network's");
  }
  return compared + static_cast<int64_t>(steps.size());
}

}  // namespace mnv2::onnx_export
