#pragma once

// The oneDNN executor's per-layer pieces: post-ops, which convolution pairs
// fuse, convolution geometry, the activations' layout. Sees no LibTorch
// header (see onednn_network.h).

#include "onednn_network.h"

#include <oneapi/dnnl/dnnl.hpp>

namespace mnv2::onednn_layers {

/// Attributes with the scratchpad the caller passes (DNNL_ARG_SCRATCHPAD).
/// oneDNN's own is private to most kernels, but per thread for some (the
/// gemm-based ones), which may then run only in the thread that created
/// them; a plan's primitives run in whichever thread calls, or in a thread
/// of a split batch. One buffer per lane also serves all its steps.
dnnl::primitive_attr user_scratchpad();

/// Post-ops: the residual add into the destination (scaled by `sum_scale`:
/// an int8 destination's code step), ReLU6, and optionally a 3x3 depthwise
/// convolution (padding 1, the depthwise layer's stride) with its ReLU6,
/// computed from the result while it is still in cache. With
/// user_scratchpad().
dnnl::primitive_attr fused_ops(bool add_to_destination,
                               bool relu6,
                               const plain::Conv* depthwise = nullptr,
                               float sum_scale = 1.f);

/// An int8 network's convolutions as oneDNN is given them, in order.
struct Int8Operands {
  std::vector<std::vector<int8_t>> codes;
  std::vector<std::vector<float>> weight_scales;  ///< per output channel
  std::vector<float> source_steps;  ///< the code step of each one's input
};

/// Without VNNI, oneDNN multiplies an s8 source by halved weights (and
/// compensates): a dense convolution on an s8 source gets its codes doubled
/// and its weight steps halved, which oneDNN halves back without loss.
/// Depthwise kernels widen to 16 bits and keep the codes as they are.
Int8Operands int8_operands(const plain::Network& net);

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
