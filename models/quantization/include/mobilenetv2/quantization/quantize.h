#pragma once

#include <mobilenetv2/quantization/quantized_network.h>

#include <functional>

#include <string>
#include <vector>

namespace mnv2 {

/// How an activation's clipping range is chosen from its calibration
/// histogram.
enum class CalibrationMethod {
  kMinMax,      ///< the largest value seen
  kPercentile,  ///< the value below which `percentile` % of them lie
  kMse,  ///< the range with the least expected squared quantization error
};

/// "minmax", "percentile", "mse"; throws std::invalid_argument otherwise.
CalibrationMethod calibration_method_from_name(const std::string& name);
std::string calibration_method_name(CalibrationMethod method);

struct QuantizeOptions {
  CalibrationMethod method = CalibrationMethod::kMse;
  double percentile = 99.99;
  /// Adds to each convolution's bias the mean shift its weight rounding
  /// causes on the calibration images (NNCF's "fast bias correction").
  bool bias_correction = true;
  /// The largest |value| a normalised image can take (from the
  /// normalisation's mean and std): the input's s8 range, so that images
  /// brighter or darker than the calibration set do not saturate.
  double input_max_abs = 0;
  /// Called after each pass over a batch (two passes over every batch):
  /// (passes done, passes in all, images in the batch), for progress.
  std::function<void(int64_t, int64_t, int64_t)> on_batch;
};

/// Post-training quantization of a folded fp32 network: weights per output
/// channel (symmetric, 7-bit dense and 8-bit depthwise codes, see
/// kDenseCodeMax), activations per tensor from histograms of the fp32
/// network's activations on `batches` (normalised [N, 3, H, W] images as
/// the weights' evaluation preprocessing gives them). Throws
/// std::invalid_argument for no images or a bad option.
QuantizedNetwork quantize_network(const FoldedNetwork& network,
                                  const std::vector<torch::Tensor>& batches,
                                  const QuantizeOptions& options);

/// How much each convolution's output loses to quantization: its signal
/// to quantization-noise ratio in dB, 10 log10(sum x^2 / sum (x - q)^2),
/// where x is the fp32 network's activation and q the quantized network's
/// (simulate_quantized), both run from `images`, so that each layer's
/// figure includes what the layers before it lost. In network order.
std::vector<double> layer_sqnr_db(const FoldedNetwork& network,
                                  const QuantizedNetwork& quantized,
                                  const torch::Tensor& images);

}  // namespace mnv2
