#include "export/onnx_writer.h"

#include <mobilenetv2/atomic_file.h>

#include <onnx/checker.h>
#include <onnx/onnx_pb.h>

#include <cctype>
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

}  // namespace

void write_onnx(
    const plain::Network& network,
    const std::vector<std::pair<std::string, std::string>>& metadata,
    const std::string& path) {
  onnx::ModelProto model;
  model.set_ir_version(onnx::IR_VERSION);
  model.set_producer_name("mnv2-export");
  model.set_model_version(1);
  auto* opset = model.add_opset_import();
  opset->set_domain("");
  opset->set_version(kOpset);
  for (const auto& [key, value] : metadata) {
    auto* entry = model.add_metadata_props();
    entry->set_key(key);
    entry->set_value(value);
  }
  auto* graph = model.mutable_graph();
  graph->set_name("mobilenet_v2");
  GraphBuilder g(graph);
  std::string x = "input";
  for (size_t b = 0; b < network.blocks.size(); ++b) {
    const auto& block = network.blocks[b];
    std::string y = x;
    for (size_t c = 0; c < block.convs.size(); ++c) {
      const auto& conv = block.convs[c];
      const std::string prefix =
          "features." + std::to_string(b) + ".conv" + std::to_string(c);
      const auto w =
          g.initializer(prefix + ".weight", conv.weight, conv.weight_shape);
      const auto bias = g.initializer(prefix + ".bias",
                                      conv.bias,
                                      {static_cast<int64_t>(conv.bias.size())});
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
        auto* clip = g.node("Clip", {y}, clipped);
        set_float(clip, "min", 0.0f);
        set_float(clip, "max", 6.0f);
        y = clipped;
      }
    }
    if (block.residual) {
      const auto sum = g.fresh("add");
      g.node("Add", {x, y}, sum);
      y = sum;
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

}  // namespace mnv2::onnx_export
