#include <mobilenetv2/quantization/quantized_network.h>

#include <torch/torch.h>

#include <sstream>

namespace mnv2 {

namespace {

constexpr int64_t kQuantizedVersion = 1;
// Geometry entries of "convs.<n>.geometry".
enum GeometryField : int64_t {
  kBlock,
  kStride,
  kPadding,
  kSamePadding,
  kGroups,
  kRelu6,
  kGeometryFields
};

std::string conv_key(size_t n, const char* what) {
  return "convs." + std::to_string(n) + "." + what;
}

torch::Tensor scalar_tensor(double value) {
  return torch::tensor({static_cast<float>(value)}, torch::kFloat);
}

[[noreturn]] void refuse(const std::string& origin, const std::string& what) {
  throw WeightsError("quantized weights '" + origin + "': " + what);
}

const torch::Tensor& typed_entry(const StateDict& state,
                                 const std::string& key,
                                 const std::string& origin,
                                 c10::ScalarType dtype,
                                 int64_t dims) {
  const auto* t = state.find(key);
  if (t == nullptr) {
    refuse(origin, "no '" + key + "'");
  }
  if (t->scalar_type() != dtype || t->dim() != dims) {
    refuse(origin,
           "'" + key + "' must be a " + std::to_string(dims) + "-D " +
               c10::toString(dtype) + " tensor, got " +
               c10::toString(t->scalar_type()) + " " + c10::str(t->sizes()));
  }
  return *t;
}

// Scales must be positive, finite and in the range a calibration writes: a
// zero, NaN, denormal or huge step would turn every code into garbage
// without any error.
void check_scales(const torch::Tensor& scales,
                  const std::string& key,
                  const std::string& origin) {
  // Compared as the fp32 the file holds: rounding a calibrated step in
  // [kMinScale, kMaxScale] to fp32 keeps it within their fp32 roundings.
  const auto s = scales.to(torch::kFloat);
  const auto bad = torch::logical_not(torch::isfinite(s) & (s > 0));
  const auto out_of_range =
      (s < static_cast<float>(kMinScale)) | (s > static_cast<float>(kMaxScale));
  const auto refused = bad | out_of_range;
  if (refused.any().item<bool>()) {
    const auto i = refused.nonzero()[0][0].item<int64_t>();
    std::ostringstream value;
    value << s.flatten()[i].item<double>();
    refuse(origin,
           "'" + key + "' holds a scale that is " +
               (bad[i].item<bool>() ? std::string("not positive and finite")
                                    : "outside [1e-12, 1e+06], the steps a "
                                      "calibration writes") +
               " (" + value.str() + " at index " + std::to_string(i) + ")");
  }
}

double positive_scale(const StateDict& state,
                      const std::string& key,
                      const std::string& origin) {
  const auto& t = typed_entry(state, key, origin, torch::kFloat, 1);
  if (t.numel() != 1) {
    refuse(origin, "'" + key + "' must hold one value");
  }
  check_scales(t, key, origin);
  return t.item<double>();
}

torch::Tensor saturate_codes(const torch::Tensor& values,
                             double scale,
                             bool unsigned_codes) {
  return torch::clamp(torch::round(values / scale),
                      unsigned_codes ? 0 : -128,
                      unsigned_codes ? 255 : 127);
}

// A convolution's output codes from y / step (fp32): u8 after ReLU6; signed
// codes otherwise, rounded as their u8 form offset by 128 in fp32, as the
// int8 engine rounds them on every CPU (onednn_layers.h, SignedCodes).
torch::Tensor output_codes(const torch::Tensor& scaled, bool relu6) {
  if (relu6) {
    return torch::clamp(torch::round(scaled), 0, 255).to(torch::kDouble);
  }
  const auto offset = scaled + 128.f;  // rounded in fp32
  return (torch::clamp(torch::round(offset), 0, 255) - 128).to(torch::kDouble);
}

}  // namespace

QuantizedConv quantize_weights(const FoldedConv& conv) {
  const auto w = conv.weight.to(torch::kFloat);
  auto max = w.abs().amax({1, 2, 3});
  // A channel of zeros (at int8's resolution) gets codes 0 with a unit step;
  // steps stay in the range a reader accepts.
  const auto step = max / static_cast<double>(code_max(conv));
  const auto scale =
      torch::where(step >= kMinScale, step.clamp_max(kMaxScale), 1.0)
          .to(torch::kFloat);
  const auto limit = static_cast<double>(code_max(conv));
  const auto codes =
      torch::clamp(torch::round(w / scale.view({-1, 1, 1, 1})), -limit, limit);
  return {codes.to(torch::kChar), scale, 0};
}

bool is_depthwise(const FoldedConv& conv) {
  return conv.groups > 1 && conv.weight.size(1) == 1 &&
         conv.groups == conv.weight.size(0);
}

int64_t code_max(const FoldedConv& conv) {
  return is_depthwise(conv) ? kDepthwiseCodeMax : kDenseCodeMax;
}

StateDict quantized_to_state_dict(const QuantizedNetwork& net) {
  StateDict state;
  state.insert("quantization.version", torch::tensor({kQuantizedVersion}));
  state.insert("quantization.input_scale", scalar_tensor(net.input_scale));
  if (net.logits_scale > 0) {
    state.insert("quantization.logits_scale", scalar_tensor(net.logits_scale));
  }
  std::vector<int64_t> residual;
  size_t n = 0;
  for (size_t b = 0; b < net.network.blocks.size(); ++b) {
    const auto& block = net.network.blocks[b];
    residual.push_back(block.residual ? 1 : 0);
    for (const auto& conv : block.convs) {
      const auto& q = net.convs.at(n);
      state.insert(conv_key(n, "codes"), q.codes.to(torch::kChar).contiguous());
      state.insert(conv_key(n, "weight_scale"),
                   q.weight_scale.to(torch::kFloat).contiguous());
      state.insert(conv_key(n, "bias"),
                   conv.bias.to(torch::kFloat).contiguous());
      state.insert(conv_key(n, "output_scale"), scalar_tensor(q.output_scale));
      state.insert(conv_key(n, "geometry"),
                   torch::tensor({static_cast<int64_t>(b),
                                  conv.stride,
                                  conv.padding,
                                  static_cast<int64_t>(conv.same_padding),
                                  conv.groups,
                                  static_cast<int64_t>(conv.relu6)}));
      ++n;
    }
  }
  state.insert("quantization.residual", torch::tensor(residual));
  state.insert("classifier.weight",
               net.network.fc_weight.to(torch::kFloat).contiguous());
  state.insert("classifier.bias",
               net.network.fc_bias.to(torch::kFloat).contiguous());
  return state;
}

bool is_quantized_state_dict(const StateDict& state) {
  return state.contains("quantization.version");
}

QuantizedNetwork quantized_from_state_dict(const StateDict& state,
                                           const std::string& origin) {
  const auto& version =
      typed_entry(state, "quantization.version", origin, torch::kLong, 1);
  if (version.numel() != 1 || version.item<int64_t>() != kQuantizedVersion) {
    refuse(origin,
           "format version " +
               (version.numel() == 1 ? std::to_string(version.item<int64_t>())
                                     : c10::str(version.sizes())) +
               " is not " + std::to_string(kQuantizedVersion));
  }
  QuantizedNetwork net;
  net.input_scale = positive_scale(state, "quantization.input_scale", origin);
  if (state.contains("quantization.logits_scale")) {  // optional: added later
    net.logits_scale =
        positive_scale(state, "quantization.logits_scale", origin);
  }
  const auto residual =
      typed_entry(state, "quantization.residual", origin, torch::kLong, 1);
  int64_t channels = 3;
  for (size_t n = 0; state.contains(conv_key(n, "codes")); ++n) {
    const auto codes_key = conv_key(n, "codes");
    const auto& codes = typed_entry(state, codes_key, origin, torch::kChar, 4);
    const auto& geometry =
        typed_entry(state, conv_key(n, "geometry"), origin, torch::kLong, 1);
    if (geometry.numel() != kGeometryFields) {
      refuse(origin,
             "'" + conv_key(n, "geometry") + "' must hold " +
                 std::to_string(kGeometryFields) + " values");
    }
    const auto g = geometry.accessor<int64_t, 1>();
    FoldedConv conv;
    conv.stride = g[kStride];
    conv.padding = g[kPadding];
    conv.same_padding = g[kSamePadding] != 0;
    conv.groups = g[kGroups];
    conv.relu6 = g[kRelu6] != 0;
    const int64_t out = codes.size(0);
    const int64_t k = codes.size(2);
    const bool geometry_ok = (conv.stride == 1 || conv.stride == 2) &&
                             conv.padding >= 0 && conv.padding <= k / 2 &&
                             conv.groups >= 1 && k == codes.size(3) &&
                             (k == 1 || k == 3) && out % conv.groups == 0 &&
                             codes.size(1) * conv.groups == channels;
    if (!geometry_ok) {
      refuse(origin,
             "convolution " + std::to_string(n) + " (" +
                 c10::str(codes.sizes()) + ", stride " +
                 std::to_string(conv.stride) + ", groups " +
                 std::to_string(conv.groups) + ") does not follow " +
                 std::to_string(channels) + " input channels");
    }
    const auto block = g[kBlock];
    const bool new_block =
        net.network.blocks.empty() ||
        block != static_cast<int64_t>(net.network.blocks.size()) - 1;
    if (new_block) {
      if (block != static_cast<int64_t>(net.network.blocks.size())) {
        refuse(origin,
               "convolution " + std::to_string(n) + " names block " +
                   std::to_string(block) + " out of order");
      }
      if (block >= residual.numel()) {
        refuse(origin,
               "'quantization.residual' has no entry for block " +
                   std::to_string(block));
      }
      net.network.blocks.emplace_back();
      net.network.blocks.back().residual = residual[block].item<int64_t>() != 0;
    }
    conv.weight = codes.to(torch::kFloat);  // dequantized below
    const auto scale_key = conv_key(n, "weight_scale");
    const auto& scale = typed_entry(state, scale_key, origin, torch::kFloat, 1);
    if (scale.numel() != out) {
      refuse(origin,
             "'" + scale_key + "' holds " + std::to_string(scale.numel()) +
                 " scales for " + std::to_string(out) + " output channels");
    }
    check_scales(scale, scale_key, origin);
    const auto limit = code_max(conv);
    if (codes.abs().max().item<int64_t>() > limit) {
      refuse(origin,
             "'" + codes_key + "' holds codes outside [-" +
                 std::to_string(limit) + ", " + std::to_string(limit) +
                 "], which CPUs without VNNI cannot multiply exactly");
    }
    const auto& bias =
        typed_entry(state, conv_key(n, "bias"), origin, torch::kFloat, 1);
    if (bias.numel() != out || !torch::isfinite(bias).all().item<bool>()) {
      refuse(origin,
             "'" + conv_key(n, "bias") + "' must hold " + std::to_string(out) +
                 " finite values");
    }
    conv.weight = conv.weight * scale.view({-1, 1, 1, 1});
    conv.bias = bias.clone();
    net.convs.push_back(
        {codes.clone(),
         scale.clone(),
         positive_scale(state, conv_key(n, "output_scale"), origin)});
    net.network.blocks.back().convs.push_back(std::move(conv));
    channels = out;
  }
  if (net.convs.empty()) {
    refuse(origin, "no convolutions ('convs.0.codes')");
  }
  if (residual.numel() != static_cast<int64_t>(net.network.blocks.size())) {
    refuse(origin,
           "'quantization.residual' has " + std::to_string(residual.numel()) +
               " entries for " + std::to_string(net.network.blocks.size()) +
               " blocks");
  }
  // A residual block must keep its input's shape.
  int64_t in = 3;
  for (size_t b = 0; b < net.network.blocks.size(); ++b) {
    const auto& block = net.network.blocks[b];
    int64_t stride = 1;
    for (const auto& conv : block.convs) {
      stride *= conv.stride;
    }
    const int64_t out = block.convs.back().weight.size(0);
    if (block.residual && (stride != 1 || out != in)) {
      refuse(origin,
             "block " + std::to_string(b) +
                 " is marked residual but changes its input's shape");
    }
    in = out;
  }
  const auto& fc_weight =
      typed_entry(state, "classifier.weight", origin, torch::kFloat, 2);
  const auto& fc_bias =
      typed_entry(state, "classifier.bias", origin, torch::kFloat, 1);
  if (fc_weight.size(1) != channels || fc_bias.numel() != fc_weight.size(0) ||
      !torch::isfinite(fc_weight).all().item<bool>() ||
      !torch::isfinite(fc_bias).all().item<bool>()) {
    refuse(origin,
           "the classifier (" + c10::str(fc_weight.sizes()) + ", bias " +
               c10::str(fc_bias.sizes()) + ") must be finite and take " +
               std::to_string(channels) + " features");
  }
  net.network.fc_weight = fc_weight.clone();
  net.network.fc_bias = fc_bias.clone();
  return net;
}

torch::Tensor simulate_quantized(
    const QuantizedNetwork& net,
    const torch::Tensor& images,
    bool features,
    const std::function<void(size_t, const torch::Tensor&)>& visit,
    ResidualAdd residual_add) {
  torch::NoGradGuard no_grad;
  // Codes as float64, whose convolutions of 8-bit values are exact; scales
  // applied in fp32 as the int8 engine applies them.
  const float input_scale = static_cast<float>(net.input_scale);
  auto codes =
      saturate_codes(images.to(torch::kFloat).contiguous(), input_scale, false)
          .to(torch::kDouble);
  float step = input_scale;
  size_t n = 0;
  for (const auto& block : net.network.blocks) {
    const auto block_codes = codes;
    const float block_step = step;
    for (size_t i = 0; i < block.convs.size(); ++i, ++n) {
      const auto& conv = block.convs[i];
      const auto& q = net.convs[n];
      FoldedConv integer = conv;
      integer.weight = q.codes.to(torch::kDouble);
      integer.bias = torch::zeros({conv.bias.size(0)}, torch::kDouble);
      const auto accumulated = apply_conv(integer, codes).to(torch::kFloat);
      const auto multiplier = (q.weight_scale.to(torch::kFloat) * step);
      auto y = accumulated * multiplier.view({1, -1, 1, 1}) +
               conv.bias.to(torch::kFloat).view({1, -1, 1, 1});
      if (conv.relu6) {
        y = torch::clamp(y, 0.0, 6.0);
      }
      if (block.residual && i + 1 == block.convs.size()) {
        // float64 holds the product exactly: rounded once to fp32 with the
        // sum (FMA), or first on its own.
        const auto input = block_codes * static_cast<double>(block_step);
        y = residual_add == ResidualAdd::kFusedMultiplyAdd
                ? (y.to(torch::kDouble) + input).to(torch::kFloat)
                : y + input.to(torch::kFloat);
      }
      step = static_cast<float>(q.output_scale);
      codes = output_codes(y * (1.f / step), conv.relu6);
      if (visit) {
        visit(n, codes.to(torch::kFloat) * step);
      }
    }
  }
  const auto pooled = (codes.to(torch::kFloat) * step).mean({2, 3});
  return features ? pooled
                  : torch::linear(
                        pooled, net.network.fc_weight, net.network.fc_bias);
}

}  // namespace mnv2
