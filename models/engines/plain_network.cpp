#include <mobilenetv2/engines/plain_network.h>

#include <mobilenetv2/nn/folded_network.h>
#include <mobilenetv2/quantization/quantized_network.h>

#include <cmath>

namespace mnv2 {

namespace {

std::vector<float> values_of(const torch::Tensor& t) {
  const auto c = t.detach().to(torch::kCPU, torch::kFloat).contiguous();
  return {c.data_ptr<float>(), c.data_ptr<float>() + c.numel()};
}

}  // namespace

plain::Network to_plain_network(const FoldedNetwork& folded) {
  plain::Network net;
  for (const auto& block : folded.blocks) {
    plain::Block b;
    b.residual = block.residual;
    for (const auto& conv : block.convs) {
      plain::Conv c;
      c.weight = values_of(conv.weight);
      c.weight_shape = conv.weight.sizes().vec();
      c.bias = values_of(conv.bias);
      c.stride = conv.stride;
      c.padding = conv.padding;
      c.same_padding = conv.same_padding;
      c.groups = conv.groups;
      c.relu6 = conv.relu6;
      b.convs.push_back(std::move(c));
    }
    net.blocks.push_back(std::move(b));
  }
  net.fc_weight = values_of(folded.fc_weight);
  net.fc_bias = values_of(folded.fc_bias);
  net.classes = folded.fc_weight.size(0);
  net.features = folded.fc_weight.size(1);
  return net;
}

plain::IntegerConv plain::integer_conv(const Conv& conv, float input_step) {
  // Below 2^31 with room for the sum of the products.
  constexpr double kBiasCodeMax = 1 << 30;
  IntegerConv q{conv.codes, conv.weight_scales, {}, 0};
  const auto channels = q.weight_scales.size();
  const auto per_channel = q.codes.size() / channels;
  q.bias.resize(channels);
  for (size_t c = 0; c < channels; ++c) {
    const double bias = conv.bias[c];
    const double code =
        bias / (static_cast<double>(input_step) * q.weight_scales[c]);
    if (std::abs(code) > kBiasCodeMax) {
      const auto widened = static_cast<float>(
          std::abs(bias) / (static_cast<double>(input_step) * kBiasCodeMax));
      for (size_t i = c * per_channel; i < (c + 1) * per_channel; ++i) {
        q.codes[i] = static_cast<int8_t>(
            std::nearbyint(q.codes[i] * q.weight_scales[c] / widened));
      }
      q.weight_scales[c] = widened;
      ++q.widened;
    }
    q.bias[c] = static_cast<int32_t>(std::nearbyint(
        bias / (static_cast<double>(input_step) * q.weight_scales[c])));
  }
  return q;
}

plain::Network to_plain_network(const QuantizedNetwork& quantized) {
  auto net = to_plain_network(quantized.network);
  size_t n = 0;
  for (auto& block : net.blocks) {
    for (auto& conv : block.convs) {
      const auto& q = quantized.convs.at(n++);
      const auto codes = q.codes.to(torch::kChar).contiguous();
      conv.codes.assign(codes.data_ptr<int8_t>(),
                        codes.data_ptr<int8_t>() + codes.numel());
      conv.weight_scales = values_of(q.weight_scale);
      conv.output_scale = static_cast<float>(q.output_scale);
    }
  }
  net.input_scale = static_cast<float>(quantized.input_scale);
  return net;
}

}  // namespace mnv2
