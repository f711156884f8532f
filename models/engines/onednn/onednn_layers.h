#pragma once

// The oneDNN executor's per-layer pieces: post-ops, which convolution pairs
// fuse, convolution geometry, the activations' layout. Sees no LibTorch
// header (see onednn_network.h).

#include "onednn_network.h"

#include <oneapi/dnnl/dnnl.hpp>

#include <cstdint>
#include <optional>

namespace mnv2::onednn_layers {

/// Attributes with the scratchpad the caller passes (DNNL_ARG_SCRATCHPAD).
/// oneDNN's own is private to most kernels, but per thread for some (the
/// gemm-based ones), which may then run only in the thread that created
/// them; a plan's primitives run in whichever thread calls, or in a thread
/// of a split batch. One buffer per lane also serves all its steps.
dnnl::primitive_attr user_scratchpad();

/// Post-ops: the residual add into the destination (scaled by `sum_scale`:
/// an int8 destination's code step; `sum_zero_point`: its codes' offset),
/// ReLU6, and optionally a 3x3 depthwise
/// convolution (padding 1, the depthwise layer's stride) with its ReLU6,
/// computed from the result while it is still in cache. With
/// user_scratchpad().
dnnl::primitive_attr fused_ops(bool add_to_destination,
                               bool relu6,
                               const plain::Conv* depthwise = nullptr,
                               float sum_scale = 1.f,
                               int32_t sum_zero_point = 0);

/// Images (fp32, any layout) to s8 codes of step `step`, element by element:
/// x * (1 / step) rounded to nearest even and saturated (NaN to -128), as
/// the QAT fake quantizer and the oracle compute them. On the calling
/// thread's team (one thread inside a split batch's lane). Replaces
/// oneDNN 3.2's scaled reorder where the layouts match: on one 224x224
/// image that took 35-50 us on two threads, no less than on one; this takes
/// 35 us on one thread and 15-17 us on two (AMX Xeon).
void quantize_images(const float* images,
                     int8_t* codes,
                     int64_t count,
                     float step);

/// Global average pooling of u8 codes of step `step`, [images, pixels,
/// channels] (NHWC), into real values [images, channels]: the codes'
/// sum (exact in fp32 up to 65,793 pixels), divided by `pixels`, times
/// `step`. On the calling thread. Replaces oneDNN 3.2's dequantizing reorder
/// and pooling (its pooling takes no u8 source with an fp32 destination):
/// 19 + 7 us for one 224x224 image on two threads (AMX Xeon).
void pool_codes(const uint8_t* codes,
                int64_t images,
                int64_t pixels,
                int64_t channels,
                float step,
                float* pooled);

/// How an int8 network keeps the signed codes of the outputs without ReLU6
/// (projections, residual sums). Both give the same codes, which
/// simulate_quantized() computes: a signed code is rounded as its unsigned
/// form, offset by 128 in fp32 (round(fl(y / step) + 128) - 128).
enum class SignedCodes {
  /// u8 codes with zero point 128. An s8 source costs oneDNN's VNNI and
  /// AVX2 kernels a shift and a compensation per load (the expansions ran
  /// 1.1-1.3x faster on u8 with a zero point, docs/benchmarks.md).
  kShiftedU8,
  /// s8 codes, rounded by post-ops as kShiftedU8 rounds. oneDNN 3.2's AMX
  /// kernels multiply s8 natively, and a source zero point sends them to
  /// a slower kernel.
  kS8,
};

/// The fewest input channels for which a dense int8 convolution runs
/// oneDNN's AMX kernels. An AMX tile row holds 64 int8 products; on fewer
/// channels oneDNN 3.2's AMX 1x1 kernels took 1.3-1.7x the time of its VNNI
/// ones in MobileNetV2 (docs/benchmarks.md).
constexpr int64_t kAmxMinInputChannels = 64;

/// Which kernels run an int8 network's convolutions, and so how each tensor
/// of signed codes is kept: in the form its reader, a 1x1 convolution with
/// as many input channels, reads fastest.
class Int8Kernels {
 public:
  /// From the CPU oneDNN runs on, and MNV2_ONEDNN_SIGNED_CODES: "s8" or
  /// "shifted-u8" keeps every signed tensor in that form (the tests run
  /// both); another value throws std::invalid_argument.
  Int8Kernels();

  /// Whether oneDNN's AMX kernels run `conv` on `input_channels`: dense,
  /// with at least kAmxMinInputChannels, and not adding a residual into
  /// shifted u8 codes. A destination zero point sends oneDNN 3.2 to its
  /// older AMX 1x1 kernel, whose sum with a zero point came out wrong in
  /// some shapes (the int8 split-batch test failed 102 of 140 checks).
  bool amx(const plain::Conv& conv,
           int64_t input_channels,
           bool residual) const;

  /// kS8 for `channels` that AMX kernels read, kShiftedU8 for the others.
  SignedCodes signed_codes(int64_t channels) const;

 private:
  bool amx_ = false;
  std::optional<SignedCodes> forced_;
};

/// Where `pd` is at an AMX kernel, moves it to its next implementation
/// that is neither an AMX nor a reference one; false where it has none.
bool skip_amx(dnnl::primitive_desc& pd);

/// The zero point of SignedCodes::kShiftedU8.
constexpr int32_t kSignedCodeOffset = 128;

/// For SignedCodes::kS8: scales the result to codes by the output step (in
/// place of oneDNN's destination scale) and rounds through +128 in fp32.
void append_offset_rounding(dnnl::post_ops& ops, float output_step);

/// An int8 network's convolutions as oneDNN is given them, in order.
struct Int8Operands {
  std::vector<std::vector<int8_t>> codes;
  std::vector<std::vector<float>> weight_scales;  ///< per output channel
  std::vector<float> source_steps;  ///< the code step of each one's input
};

/// Without VNNI, oneDNN multiplies an s8 source by halved weights (and
/// compensates): a dense convolution on an s8 source (the image, and every
/// output without ReLU6 kept as SignedCodes::kS8) gets its codes doubled and
/// its weight steps halved, which oneDNN halves back without loss.
/// Depthwise kernels widen to 16 bits and keep the codes as they are.
Int8Operands int8_operands(const plain::Network& net,
                           const Int8Kernels& kernels);

/// Whether oneDNN's fused-depthwise post-op can compute `next` after
/// `conv`: a 1x1 convolution followed by a 3x3 depthwise one with padding 1.
bool fusable(const plain::Conv& conv, const plain::Conv& next);

/// A convolution's weights shape and tag, padding (TF "SAME" resolved for
/// this input) and output size.
struct ConvGeometry {
  dnnl::memory::dims weights;  ///< oihw, or goihw when grouped
  dnnl::memory::format_tag weights_tag;
  dnnl::memory::dims pad_l, pad_r;
  dnnl::memory::dim out, oh, ow;
};

ConvGeometry geometry(const plain::Conv& conv,
                      dnnl::memory::dim c,
                      dnnl::memory::dim h,
                      dnnl::memory::dim w);

/// The activations' format tag: NHWC, or oneDNN's blocked layout for the
/// CPU's vector width (nChw16c on AVX-512, nChw8c otherwise).
dnnl::memory::format_tag activation_tag(OneDnnNetwork::Layout layout);

/// Whether oneDNN chose its slow reference implementation.
bool is_reference(const dnnl::primitive_desc_base& pd);

}  // namespace mnv2::onednn_layers
