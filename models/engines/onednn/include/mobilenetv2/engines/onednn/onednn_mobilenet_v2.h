#pragma once

#include <mobilenetv2/nn/mobilenet_v2.h>
#include <mobilenetv2/quantization/residual_add.h>

#include <memory>
#include <string>

namespace mnv2 {

class OneDnnNetwork;
struct QuantizedNetwork;

/// A trained MobileNetV2 for fp32 CPU inference as a chain of oneDNN
/// primitives, called directly: BatchNorm folded, each convolution fused
/// with its bias, ReLU6 and residual add, each 1x1 expansion with the
/// depthwise convolution after it, activations in oneDNN's blocked layout
/// for the CPU at hand, weights reordered once, pooling and the classifier
/// in oneDNN too.
/// Faster than mnv2::FusedMobileNetV2 in fp32 (no per-partition LibTorch work;
/// docs/benchmarks.md gives measured figures); logits equal the eager model's
/// in eval mode to about 1e-6 relative.
///
/// Part of the optional library MobileNetV2::onednn, built where oneDNN 3.x
/// is found (scripts/setup.sh installs it; dnnl_DIR points at another). It runs
/// on the intra-op threads LibTorch is set to (at::set_num_threads). forward()
/// may be called from several threads; calls run one at a time.
class OneDnnMobileNetV2 {
 public:
  /// `model` must be on the CPU and in eval mode; its weights are copied.
  explicit OneDnnMobileNetV2(const MobileNetV2& model);
  /// An int8 network (mnv2::quantize_network, or read from a quantized
  /// weights file): int8 convolutions with per-channel weight scales, ReLU6
  /// and the residual add fused, activations as u8/s8 codes channels last,
  /// the pooling and the classifier in fp32. Computes what integer
  /// arithmetic gives on any x86 CPU, with or without VNNI (the codes'
  /// ranges keep oneDNN's 16-bit pair sums from saturating).
  explicit OneDnnMobileNetV2(const QuantizedNetwork& network);
  ~OneDnnMobileNetV2();
  OneDnnMobileNetV2(OneDnnMobileNetV2&&) noexcept;
  OneDnnMobileNetV2& operator=(OneDnnMobileNetV2&&) noexcept;

  /// Logits ([N, classes], fp32) of a CPU fp32 batch of normalised images
  /// [N, C, H, W] in either memory format. Always fp32, whatever autocast is
  /// on. The first call with a new input shape plans it (the last four
  /// shapes are kept).
  torch::Tensor forward(const torch::Tensor& images) const;

  /// How the int8 kernels oneDNN runs here round the residual add: in a
  /// fused multiply-add on AVX2 and above, the product first on SSE4.1 (a
  /// CPU without AVX2). simulate_quantized() follows either.
  static ResidualAdd int8_residual_add();

 private:
  std::unique_ptr<OneDnnNetwork> network_;
  int64_t in_channels_ = 0;
};

/// The version of the oneDNN library the add-on runs on ("3.2.0"), as the
/// loaded library reports it.
std::string onednn_version();

}  // namespace mnv2
