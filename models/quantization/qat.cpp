#include <mobilenetv2/quantization/qat.h>

#include <mobilenetv2/nn/conv_bn_activation.h>
#include <mobilenetv2/nn/folded_network.h>

#include <torch/torch.h>

#include <algorithm>
#include <stdexcept>

namespace mnv2 {

namespace {

// One convolution with its BatchNorm, as QAT computes it.
struct QatUnit {
  torch::nn::Conv2dImpl* conv;
  torch::nn::BatchNorm2dImpl* bn;
  bool relu6;
  bool same_padding;
  bool residual_end;  // the last convolution of a residual block
};

struct QatBlock {
  std::vector<QatUnit> units;
};

QatUnit unit_of(ConvBNActivationImpl& unit) {
  return {unit.ptr(0)->as<torch::nn::Conv2dImpl>(),
          unit.ptr(1)->as<torch::nn::BatchNorm2dImpl>(),
          unit.options.activation(),
          unit.pads_input(),
          false};
}

// The model's convolutions block by block, in QuantizedNetwork's order.
std::vector<QatBlock> blocks_of(const MobileNetV2Impl& model) {
  std::vector<QatBlock> blocks;
  for (const auto& layer : model.features->children()) {
    QatBlock block;
    if (auto* unit = layer->as<ConvBNActivationImpl>()) {
      block.units.push_back(unit_of(*unit));
    } else if (auto* ir = layer->as<InvertedResidualImpl>()) {
      auto& parts = ir->conv;
      for (size_t i = 0; i + 2 < parts->size(); ++i) {
        block.units.push_back(
            unit_of(*parts->ptr(i)->as<ConvBNActivationImpl>()));
      }
      block.units.push_back(
          {parts->ptr(parts->size() - 2)->as<torch::nn::Conv2dImpl>(),
           parts->ptr(parts->size() - 1)->as<torch::nn::BatchNorm2dImpl>(),
           false,
           false,
           ir->uses_residual()});
    } else {
      throw std::invalid_argument("QAT: unexpected layer in features");
    }
    blocks.push_back(std::move(block));
  }
  return blocks;
}

int64_t weight_code_max(const torch::nn::Conv2dImpl& conv) {
  const auto& w = conv.weight;
  const bool depthwise = conv.options.groups() > 1 && w.size(1) == 1 &&
                         conv.options.groups() == w.size(0);
  return depthwise ? kDepthwiseCodeMax : kDenseCodeMax;
}

// Per-channel steps as quantize_weights chooses them, from the folded
// weights' values (not differentiated).
torch::Tensor weight_steps(const torch::Tensor& folded, int64_t code_max) {
  const auto step =
      folded.detach().abs().amax({1, 2, 3}) / static_cast<double>(code_max);
  return torch::where(step >= kMinScale, step.clamp_max(kMaxScale), 1.0)
      .to(torch::kFloat);
}

double activation_step(double range, bool relu6) {
  const double step = range / (relu6 ? 255.0 : 127.0);
  return step < kMinScale ? 1.0 : std::min(step, kMaxScale);
}

// The output's codes as the engine rounds them, gradients passing straight
// through inside the range.
torch::Tensor fake_quantize_activation(const torch::Tensor& y,
                                       double range,
                                       bool relu6) {
  // The engine multiplies by the fp32 step: fake-quantize at that value.
  const double step =
      static_cast<double>(static_cast<float>(activation_step(range, relu6)));
  return torch::fake_quantize_per_tensor_affine(
      y, step, 0, relu6 ? 0 : -128, relu6 ? 255 : 127);
}

// Tracks a range: the first batch's largest |value|, then a moving average.
void update_range(QatState& state, size_t n, const torch::Tensor& y) {
  const double seen = y.detach().abs().max().item<double>();
  auto range = state.ranges.accessor<double, 1>();
  range[static_cast<int64_t>(n)] =
      range[static_cast<int64_t>(n)] >= 0
          ? (1 - state.range_momentum) * range[static_cast<int64_t>(n)] +
                state.range_momentum * seen
          : seen;
}

// The weight, whose gradient comes back in the weight's own strides. The
// fold's product loses a 1x1 kernel's channels_last strides (its size-1
// dimensions make both layouts one), and DDP's Reducer then copies every
// such gradient through a mismatched bucket view.
struct GradientInParameterStrides
    : public torch::autograd::Function<GradientInParameterStrides> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx,
                               const torch::Tensor& weight) {
    ctx->saved_data["sizes"] = weight.sizes().vec();
    ctx->saved_data["strides"] = weight.strides().vec();
    return weight.view_as(weight);
  }
  static torch::autograd::tensor_list backward(
      torch::autograd::AutogradContext* ctx,
      torch::autograd::tensor_list grads) {
    auto out = torch::empty_strided(ctx->saved_data["sizes"].toIntVector(),
                                    ctx->saved_data["strides"].toIntVector(),
                                    grads[0].options());
    out.copy_(grads[0]);
    return {out};
  }
};

// One convolution + BatchNorm (+ ReLU6) with its weights fake-quantized.
torch::Tensor fake_quantized_conv(const QatUnit& unit,
                                  const torch::Tensor& x,
                                  bool frozen) {
  auto& conv = *unit.conv;
  auto& bn = *unit.bn;
  // BatchNorm's scale at the running statistics, as fold_batchnorm folds it.
  const auto scale = bn.weight / torch::sqrt(bn.running_var + bn.options.eps());
  const auto folded = GradientInParameterStrides::apply(conv.weight) *
                      scale.view({-1, 1, 1, 1});
  const auto code_max = weight_code_max(conv);
  const auto steps = weight_steps(folded, code_max);
  const auto weight = torch::fake_quantize_per_channel_affine(
      folded,
      steps.to(folded.device()),
      torch::zeros({steps.size(0)},
                   torch::dtype(torch::kInt).device(folded.device())),
      0,
      -code_max,
      code_max);
  const auto input =
      unit.same_padding
          ? pad_tf_same(x, conv.weight.size(2), (*conv.options.stride())[0])
          : x;
  auto y =
      torch::conv2d(input,
                    weight,
                    {},
                    conv.options.stride(),
                    *std::get<torch::ExpandingArray<2>>(conv.options.padding()),
                    conv.options.dilation(),
                    conv.options.groups());
  if (frozen) {
    y = y + (bn.bias - bn.running_mean * scale).view({1, -1, 1, 1});
  } else {
    // Undo the folded scale and normalise with the batch's statistics
    // (which update the running ones); a zero scale is left as it is.
    const auto safe = torch::where(scale == 0, torch::ones_like(scale), scale);
    y = torch::batch_norm(y / safe.view({1, -1, 1, 1}),
                          bn.weight,
                          bn.bias,
                          bn.running_mean,
                          bn.running_var,
                          /*training=*/true,
                          bn.options.momentum().value_or(0.1),
                          bn.options.eps(),
                          /*cudnn_enabled=*/true);
  }
  return unit.relu6 ? torch::clamp(y, 0.0, 6.0) : y;
}

}  // namespace

QatState make_qat_state(const MobileNetV2& model, double input_max_abs) {
  if (!(input_max_abs > 0)) {
    throw std::invalid_argument("QAT needs the normalised input's range");
  }
  size_t convs = 0;
  for (const auto& block : blocks_of(*model)) {
    convs += block.units.size();
  }
  QatState state;
  // -1: not measured yet (an activation that stays zero has range 0).
  state.ranges =
      torch::full({static_cast<int64_t>(convs + 1)}, -1.0, torch::kDouble);
  state.input_scale = static_cast<float>(input_max_abs / 127.0);
  return state;
}

bool qat_ranges_measured(const QatState& state) {
  return state.ranges.defined() && state.ranges.numel() > 0 &&
         (state.ranges >= 0).all().item<bool>();
}

torch::Tensor qat_forward(MobileNetV2& model,
                          QatState& state,
                          const torch::Tensor& images) {
  if (!model->is_training()) {
    if (!qat_ranges_measured(state)) {
      throw std::logic_error("QAT: evaluation before any training batch");
    }
    // The int8 network computes on the CPU.
    return simulate_quantized(qat_quantized_network(model, state), images.cpu())
        .to(images.device());
  }
  const bool frozen = state.batchnorm_frozen;
  auto x = torch::fake_quantize_per_tensor_affine(
      images.to(torch::kFloat), state.input_scale, 0, -128, 127);
  size_t n = 0;
  for (const auto& block : blocks_of(*model)) {
    const auto block_input = x;
    for (const auto& unit : block.units) {
      auto y = fake_quantized_conv(unit, x, frozen);
      if (unit.residual_end) {
        y = y + block_input;
      }
      update_range(state, n, y);
      x = fake_quantize_activation(
          y, state.ranges[n].item<double>(), unit.relu6);
      ++n;
    }
  }
  auto logits = model->forward_head(x.mean({2, 3}));
  update_range(state, n, logits);
  return logits;
}

QuantizedNetwork qat_quantized_network(const MobileNetV2& model,
                                       const QatState& state) {
  if (!qat_ranges_measured(state)) {
    throw std::invalid_argument("QAT: the activation ranges are not measured");
  }
  QuantizedNetwork out;
  out.network = fold_batchnorm(model);
  const auto ranges = state.ranges.accessor<double, 1>();
  size_t n = 0;
  for (auto& block : out.network.blocks) {
    for (auto& conv : block.convs) {
      auto q = quantize_weights(conv);
      conv.weight =
          q.codes.to(torch::kFloat) * q.weight_scale.view({-1, 1, 1, 1});
      conv.bias = conv.bias.to(torch::kFloat).cpu();
      conv.weight = conv.weight.cpu();
      q.output_scale = static_cast<float>(
          activation_step(ranges[static_cast<int64_t>(n)], conv.relu6));
      q.codes = q.codes.cpu();
      q.weight_scale = q.weight_scale.cpu();
      out.convs.push_back(std::move(q));
      ++n;
    }
  }
  out.network.fc_weight = out.network.fc_weight.cpu();
  out.network.fc_bias = out.network.fc_bias.cpu();
  if (n + 1 != static_cast<size_t>(state.ranges.numel())) {
    throw std::invalid_argument("QAT: the ranges are of another network");
  }
  out.input_scale = state.input_scale;
  const double logits_step =
      kLogitsHeadroom * ranges[static_cast<int64_t>(n)] / 127.0;
  out.logits_scale = static_cast<float>(
      logits_step < kMinScale ? 1.0 : std::min(logits_step, kMaxScale));
  return out;
}

}  // namespace mnv2
