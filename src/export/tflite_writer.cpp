#include "export/tflite_writer.h"

#include "export/tflite_layout.h"
#include "export/tflite_model_builder.h"
#include "tflite_schema_generated.h"

#include <mobilenetv2/util/atomic_file.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace mnv2::tflite_export {

namespace {

using tflite::BuiltinOperator;
using tflite::TensorType;

// An activation of the graph being written.
struct Activation {
  int32_t tensor = -1;
  int64_t size = 0;  // height and width
  int64_t channels = 0;
  float step = 0;  // int8 only
  int64_t zero_point = 0;
};

int32_t dim(int64_t v) {
  return static_cast<int32_t>(v);
}

// TensorFlow Lite's kernels index a tensor's elements with int.
void check_representable(const plain::Network& network, int64_t size) {
  int64_t pixels = size;
  for (const auto& block : network.blocks) {
    for (const auto& conv : block.convs) {
      const auto biggest = pixels * pixels *
                           std::max(conv.weight_shape[0], conv.weight_shape[1]);
      if (biggest * 4 > INT32_MAX) {
        throw std::runtime_error(
            "an input of " + std::to_string(size) +
            " pixels gives activations TensorFlow Lite cannot index");
      }
      pixels = conv_padding(conv, pixels).output_size;
    }
  }
}

class GraphWriter {
 public:
  GraphWriter(const plain::Network& network, const TfliteOptions& options)
      : net_(network),
        options_(options),
        int8_(network.input_scale > 0),
        model_(int8_) {}

  std::string write() {
    const int32_t n = 1;
    const auto size = dim(options_.image_size);
    Activation x{-1, options_.image_size, 3, net_.input_scale, 0};
    const std::vector<int32_t> image_shape{n, size, size, 3};
    // Codes in and out need no conversion: the graph's own int8 tensors.
    const bool convert = int8_ && options_.io_type != IoType::kInt8;
    x.tensor = model_.activation(
        convert ? "input_codes" : "input", image_shape, x.step, 0);
    int32_t input = x.tensor;
    if (convert) {
      input = io_tensor("input", image_shape, x.step);
      model_.op(BuiltinOperator::QUANTIZE,
                2,
                {input},
                {x.tensor},
                tflite::BuiltinOptions::QuantizeOptions,
                tflite::CreateQuantizeOptions(model_.fbb()).Union());
    }
    for (size_t b = 0; b < net_.blocks.size(); ++b) {
      const auto& block = net_.blocks[b];
      const Activation block_input = x;
      for (size_t c = 0; c < block.convs.size(); ++c) {
        const auto name =
            "features." + std::to_string(b) + ".conv" + std::to_string(c);
        const bool add = block.residual && c + 1 == block.convs.size();
        x = convolution(name, block.convs[c], x, add ? &block_input : nullptr);
      }
    }
    const auto logits = classifier(x, convert ? "logits_codes" : "logits");
    int32_t output = logits;
    if (convert) {
      output =
          io_tensor("logits", {n, dim(net_.classes)}, options_.logits_scale);
      const bool to_float = options_.io_type == IoType::kFloat32;
      model_.op(
          to_float ? BuiltinOperator::DEQUANTIZE : BuiltinOperator::QUANTIZE,
          2,
          {logits},
          {output},
          to_float ? tflite::BuiltinOptions::DequantizeOptions
                   : tflite::BuiltinOptions::QuantizeOptions,
          to_float ? tflite::CreateDequantizeOptions(model_.fbb()).Union()
                   : tflite::CreateQuantizeOptions(model_.fbb()).Union());
    }
    return model_.finish(input, output, options_.metadata_json);
  }

 private:
  // An int8 model's input or output as the user asked for it: uint8 codes
  // (zero point 128) or float32.
  int32_t io_tensor(const std::string& name,
                    const std::vector<int32_t>& shape,
                    float step) {
    switch (options_.io_type) {
      case IoType::kFloat32:
        return model_.tensor(name, shape, TensorType::FLOAT32);
      case IoType::kUint8:
      case IoType::kInt8:
        break;
    }
    const Quantization q{{step}, {128}, 0};
    return model_.tensor(name, shape, TensorType::UINT8, &q);
  }

  Activation pad(const std::string& name, const Activation& x, int64_t p) {
    const std::vector<int32_t> paddings{
        0, 0, dim(p), dim(p), dim(p), dim(p), 0, 0};
    const auto amounts = model_.constant(
        name + ".paddings", {4, 2}, TensorType::INT32, paddings);
    Activation y = x;
    y.size = x.size + 2 * p;
    y.tensor = model_.activation(name + ".padded",
                                 {1, dim(y.size), dim(y.size), dim(y.channels)},
                                 y.step,
                                 y.zero_point);
    model_.op(BuiltinOperator::PAD,
              int8_ ? 3 : 1,
              {x.tensor, amounts},
              {y.tensor},
              tflite::BuiltinOptions::PadOptions,
              tflite::CreatePadOptions(model_.fbb()).Union());
    return y;
  }

  Activation convolution(const std::string& name,
                         const plain::Conv& conv,
                         Activation x,
                         const Activation* residual) {
    const auto padding = conv_padding(conv, x.size);
    if (padding.pad > 0) {
      x = pad(name, x, padding.pad);
    }
    const auto out = static_cast<int64_t>(conv.bias.size());
    const bool depthwise = is_depthwise(conv);
    Activation y{-1, padding.output_size, out, 0, 0};
    int32_t weight = 0;
    int32_t bias = 0;
    if (int8_) {
      const auto q = plain::integer_conv(conv, x.step);
      const Quantization wq{q.weight_scales,
                            std::vector<int64_t>(q.weight_scales.size(), 0),
                            depthwise ? 3 : 0};
      weight = model_.constant(name + ".weight",
                               tflite_weight_shape(conv),
                               TensorType::INT8,
                               tflite_weight_layout(q.codes, conv),
                               &wq);
      Quantization bq{{}, std::vector<int64_t>(q.weight_scales.size(), 0), 0};
      for (const auto s : q.weight_scales) {
        bq.scale.push_back(x.step * s);
      }
      bias = model_.constant(
          name + ".bias", {dim(out)}, TensorType::INT32, q.bias, &bq);
      y.step = residual != nullptr ? plain::residual_branch_step(
                                         conv.output_scale, residual->step)
                                   : conv.output_scale;
      y.zero_point = zero_point_after(conv.relu6);
    } else {
      weight = model_.constant(name + ".weight",
                               tflite_weight_shape(conv),
                               TensorType::FLOAT32,
                               tflite_weight_layout(conv.weight, conv));
      bias = model_.constant(
          name + ".bias", {dim(out)}, TensorType::FLOAT32, conv.bias);
    }
    const std::vector<int32_t> shape{1, dim(y.size), dim(y.size), dim(out)};
    y.tensor = model_.activation(name + ".output", shape, y.step, y.zero_point);
    const auto tf_padding =
        padding.same ? tflite::Padding::SAME : tflite::Padding::VALID;
    const auto activation = conv.relu6 ? tflite::ActivationFunctionType::RELU6
                                       : tflite::ActivationFunctionType::NONE;
    const auto stride = dim(conv.stride);
    if (depthwise) {
      model_.op(BuiltinOperator::DEPTHWISE_CONV_2D,
                int8_ ? 3 : 1,
                {x.tensor, weight, bias},
                {y.tensor},
                tflite::BuiltinOptions::DepthwiseConv2DOptions,
                tflite::CreateDepthwiseConv2DOptions(
                    model_.fbb(), tf_padding, stride, stride, 1, activation)
                    .Union());
    } else {
      model_.op(BuiltinOperator::CONV_2D,
                int8_ ? 3 : 1,
                {x.tensor, weight, bias},
                {y.tensor},
                tflite::BuiltinOptions::Conv2DOptions,
                tflite::CreateConv2DOptions(
                    model_.fbb(), tf_padding, stride, stride, activation)
                    .Union());
    }
    if (residual == nullptr) {
      return y;
    }
    Activation sum = y;
    sum.step = conv.output_scale;
    sum.zero_point = 0;
    sum.tensor = model_.activation(name + ".sum", shape, sum.step, 0);
    model_.op(BuiltinOperator::ADD,
              int8_ ? 2 : 1,
              {residual->tensor, y.tensor},
              {sum.tensor},
              tflite::BuiltinOptions::AddOptions,
              tflite::CreateAddOptions(model_.fbb()).Union());
    return sum;
  }

  // Global average pooling (MEAN over height and width; int8: the same step
  // and zero point as its input) and the fully connected layer.
  int32_t classifier(const Activation& x, const std::string& logits_name) {
    const std::vector<int32_t> axes{1, 2};
    const auto axes_tensor =
        model_.constant("pool.axes", {2}, TensorType::INT32, axes);
    const auto pooled =
        model_.activation("pooled", {1, dim(x.channels)}, x.step, x.zero_point);
    model_.op(BuiltinOperator::MEAN,
              int8_ ? 2 : 1,
              {x.tensor, axes_tensor},
              {pooled},
              tflite::BuiltinOptions::ReducerOptions,
              tflite::CreateReducerOptions(model_.fbb(), false).Union());
    const auto classes = dim(net_.classes);
    const std::vector<int32_t> w_shape{classes, dim(net_.features)};
    int32_t weight = 0;
    int32_t bias = 0;
    if (int8_) {
      const auto q = classifier_codes(net_);
      const Quantization wq{
          q.scales, std::vector<int64_t>(q.scales.size(), 0), 0};
      weight = model_.constant(
          "classifier.1.weight", w_shape, TensorType::INT8, q.codes, &wq);
      Quantization bq{{}, std::vector<int64_t>(q.scales.size(), 0), 0};
      std::vector<int32_t> codes;
      for (size_t c = 0; c < q.scales.size(); ++c) {
        bq.scale.push_back(x.step * q.scales[c]);
        codes.push_back(static_cast<int32_t>(std::nearbyint(
            static_cast<double>(net_.fc_bias[c]) / bq.scale[c])));
      }
      bias = model_.constant(
          "classifier.1.bias", {classes}, TensorType::INT32, codes, &bq);
    } else {
      weight = model_.constant(
          "classifier.1.weight", w_shape, TensorType::FLOAT32, net_.fc_weight);
      bias = model_.constant(
          "classifier.1.bias", {classes}, TensorType::FLOAT32, net_.fc_bias);
    }
    const auto logits =
        model_.activation(logits_name, {1, classes}, options_.logits_scale, 0);
    model_.op(BuiltinOperator::FULLY_CONNECTED,
              int8_ ? 4 : 1,
              {pooled, weight, bias},
              {logits},
              tflite::BuiltinOptions::FullyConnectedOptions,
              tflite::CreateFullyConnectedOptions(model_.fbb()).Union());
    return logits;
  }

  const plain::Network& net_;
  const TfliteOptions& options_;
  bool int8_;
  ModelBuilder model_;
};

}  // namespace

void write_tflite(const plain::Network& network,
                  const TfliteOptions& options,
                  const std::string& path) {
  if (network.input_scale > 0 && !(options.logits_scale > 0)) {
    throw std::runtime_error("an int8 model needs the logits' step");
  }
  check_representable(network, options.image_size);
  write_file_atomically(path, GraphWriter(network, options).write());
}

}  // namespace mnv2::tflite_export
