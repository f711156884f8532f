#include <mobilenetv2/quantization/quantize.h>

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <stdexcept>

namespace mnv2 {

namespace {

constexpr int64_t kHistogramBins = 2048;
constexpr int64_t kMseCandidates = 256;
constexpr double kU8Levels = 255;
constexpr double kS8Levels = 127;

// What calibration gathers about one activation.
struct ActivationStats {
  double max = 0;
  torch::Tensor histogram;  // of |value| over (0, max]; exact zeros apart
  torch::Tensor bias_shift_sum;
  int64_t positions = 0;
};

// Runs the fp32 network conv by conv; `visit(n, conv, input, output)` sees
// each convolution's input and its output after ReLU6 and the residual add.
void walk_fp32(
    const FoldedNetwork& net,
    const torch::Tensor& images,
    const std::function<void(
        size_t, const FoldedConv&, const torch::Tensor&, const torch::Tensor&)>&
        visit) {
  auto x = images;
  size_t n = 0;
  for (const auto& block : net.blocks) {
    const auto block_input = x;
    for (size_t i = 0; i < block.convs.size(); ++i, ++n) {
      const auto& conv = block.convs[i];
      auto y = apply_conv(conv, x);
      if (conv.relu6) {
        y = torch::clamp(y, 0.0, 6.0);
      }
      if (block.residual && i + 1 == block.convs.size()) {
        y = y + block_input;
      }
      visit(n, conv, x, y);
      x = y;
    }
  }
}

// The clipping value from a histogram of |value| over (0, max].
double choose_clip(const ActivationStats& stats,
                   double levels,
                   const QuantizeOptions& options) {
  if (stats.max <= 0) {
    return 1.0;  // all zeros: any positive step
  }
  if (options.method == CalibrationMethod::kMinMax) {
    return stats.max;
  }
  const auto counts = stats.histogram.to(torch::kDouble);
  const double total = counts.sum().item<double>();
  const double bin = stats.max / kHistogramBins;
  if (total <= 0) {
    return stats.max;
  }
  if (options.method == CalibrationMethod::kPercentile) {
    const auto cumulative = counts.cumsum(0) / total;
    const auto above = (cumulative >= options.percentile / 100).nonzero();
    const auto index =
        above.numel() > 0 ? above[0][0].item<int64_t>() : kHistogramBins - 1;
    return (index + 1) * bin;
  }
  // Mean squared error of quantizing to a range `clip`: values above are
  // clipped, values below are rounded (uniform error, step^2 / 12).
  const auto centers =
      (torch::arange(kHistogramBins, torch::kDouble) + 0.5) * bin;
  const auto clips = torch::linspace(
      stats.max / kMseCandidates, stats.max, kMseCandidates, torch::kDouble);
  const auto over = (centers.unsqueeze(0) - clips.unsqueeze(1)).clamp_min(0);
  const auto clipped_error = (over.square() * counts.unsqueeze(0)).sum(1);
  const auto inside =
      (centers.unsqueeze(0) <= clips.unsqueeze(1)).to(torch::kDouble);
  const auto step = clips / levels;
  const auto rounding_error =
      (inside * counts.unsqueeze(0)).sum(1) * step.square() / 12;
  const auto best = (clipped_error + rounding_error).argmin().item<int64_t>();
  return clips[best].item<double>();
}

}  // namespace

CalibrationMethod calibration_method_from_name(const std::string& name) {
  if (name == "minmax") {
    return CalibrationMethod::kMinMax;
  }
  if (name == "percentile") {
    return CalibrationMethod::kPercentile;
  }
  if (name == "mse") {
    return CalibrationMethod::kMse;
  }
  throw std::invalid_argument("unknown calibration method '" + name +
                              "' (minmax, percentile, mse)");
}

std::string calibration_method_name(CalibrationMethod method) {
  switch (method) {
    case CalibrationMethod::kMinMax:
      return "minmax";
    case CalibrationMethod::kPercentile:
      return "percentile";
    case CalibrationMethod::kMse:
      return "mse";
  }
  return "?";
}

QuantizedNetwork quantize_network(const FoldedNetwork& network,
                                  const std::vector<torch::Tensor>& batches,
                                  const QuantizeOptions& options) {
  if (batches.empty()) {
    throw std::invalid_argument("quantization needs calibration images");
  }
  if (!(options.input_max_abs > 0)) {
    throw std::invalid_argument(
        "quantization needs the normalised input's range");
  }
  if (!(options.percentile > 0 && options.percentile <= 100)) {
    throw std::invalid_argument("the percentile must be in (0, 100]");
  }
  torch::NoGradGuard no_grad;
  QuantizedNetwork out;
  out.network = network;
  std::vector<torch::Tensor> weight_error;  // fp32 minus dequantized weights
  for (auto& block : out.network.blocks) {
    for (auto& conv : block.convs) {
      auto q = quantize_weights(conv);
      const auto dequantized =
          q.codes.to(torch::kFloat) * q.weight_scale.view({-1, 1, 1, 1});
      weight_error.push_back(conv.weight.to(torch::kFloat) - dequantized);
      conv.weight = dequantized;
      conv.bias = conv.bias.to(torch::kFloat).clone();
      out.convs.push_back(std::move(q));
    }
  }
  std::vector<ActivationStats> stats(out.convs.size());
  double logits_max = 0;
  const auto passes = static_cast<int64_t>(2 * batches.size());
  int64_t passes_done = 0;
  const auto report = [&](const torch::Tensor& images) {
    if (options.on_batch) {
      options.on_batch(++passes_done, passes, images.size(0));
    }
  };
  // First pass: each activation's largest magnitude, and the mean output
  // shift each convolution's weight rounding causes.
  for (const auto& images : batches) {
    walk_fp32(
        network,
        images.to(torch::kFloat),
        [&](size_t n,
            const FoldedConv& conv,
            const torch::Tensor& input,
            const torch::Tensor& output) {
          auto& s = stats[n];
          s.max = std::max(s.max, output.abs().max().item<double>());
          if (options.bias_correction) {
            FoldedConv error = conv;
            error.weight = weight_error[n];
            error.bias = torch::zeros_like(conv.bias);
            const auto shift = apply_conv(error, input).sum({0, 2, 3});
            s.bias_shift_sum =
                s.bias_shift_sum.defined() ? s.bias_shift_sum + shift : shift;
            s.positions += output.size(0) * output.size(2) * output.size(3);
          }
          if (n + 1 == stats.size()) {
            const auto logits =
                torch::linear(output.mean({2, 3}),
                              network.fc_weight.to(torch::kFloat),
                              network.fc_bias.to(torch::kFloat));
            logits_max =
                std::max(logits_max, logits.abs().max().item<double>());
          }
        });
    report(images);
  }
  // Second pass: histograms over each activation's range.
  for (const auto& images : batches) {
    walk_fp32(network,
              images.to(torch::kFloat),
              [&](size_t n,
                  const FoldedConv&,
                  const torch::Tensor&,
                  const torch::Tensor& output) {
                auto& s = stats[n];
                if (s.max <= 0) {
                  return;
                }
                const auto magnitudes = output.abs().flatten();
                const auto h =
                    torch::histc(magnitudes.masked_select(magnitudes > 0),
                                 kHistogramBins,
                                 0,
                                 s.max);
                s.histogram = s.histogram.defined() ? s.histogram + h : h;
              });
    report(images);
  }
  size_t n = 0;
  for (auto& block : out.network.blocks) {
    for (auto& conv : block.convs) {
      const double levels = conv.relu6 ? kU8Levels : kS8Levels;
      const double clip = choose_clip(stats[n], levels, options);
      // Scales are kept as the fp32 values the engines multiply with.
      const double step = clip / levels;
      out.convs[n].output_scale = static_cast<float>(
          step < kMinScale ? 1.0 : std::min(step, kMaxScale));
      if (options.bias_correction && stats[n].positions > 0) {
        conv.bias += stats[n].bias_shift_sum / stats[n].positions;
      }
      ++n;
    }
  }
  out.input_scale = static_cast<float>(options.input_max_abs / kS8Levels);
  const double logits_step = kLogitsHeadroom * logits_max / kS8Levels;
  out.logits_scale = static_cast<float>(
      logits_step < kMinScale ? 1.0 : std::min(logits_step, kMaxScale));
  return out;
}

std::vector<double> layer_sqnr_db(const FoldedNetwork& network,
                                  const QuantizedNetwork& quantized,
                                  const torch::Tensor& images) {
  torch::NoGradGuard no_grad;
  const auto x = images.to(torch::kFloat);
  std::vector<torch::Tensor> reference;
  walk_fp32(network,
            x,
            [&](size_t,
                const FoldedConv&,
                const torch::Tensor&,
                const torch::Tensor& output) { reference.push_back(output); });
  std::vector<double> sqnr(reference.size());
  simulate_quantized(
      quantized, x, true, [&](size_t n, const torch::Tensor& activation) {
        const auto& r = reference.at(n);
        const double signal = r.square().sum().item<double>();
        const double noise = (r - activation).square().sum().item<double>();
        sqnr[n] = noise > 0 ? 10 * std::log10(std::max(signal, 1e-30) / noise)
                            : std::numeric_limits<double>::infinity();
      });
  return sqnr;
}

}  // namespace mnv2
