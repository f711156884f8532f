#include "onednn_layers.h"

#include <mobilenetv2/nn/padding.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <stdexcept>
#include <string>

namespace mnv2::onednn_layers {

using dnnl::memory;
using Dims = memory::dims;
using Tag = memory::format_tag;
constexpr auto kF32 = dnnl::memory::data_type::f32;

dnnl::primitive_attr user_scratchpad() {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

dnnl::primitive_attr fused_ops(bool add_to_destination,
                               bool relu6,
                               const plain::Conv* depthwise,
                               float sum_scale,
                               int32_t sum_zero_point) {
  dnnl::post_ops ops;
  if (add_to_destination) {
    ops.append_sum(sum_scale, sum_zero_point);
  }
  if (relu6) {
    ops.append_eltwise(dnnl::algorithm::eltwise_clip, 0.f, 6.f);
  }
  if (depthwise != nullptr) {
    ops.append_dw(kF32, kF32, kF32, 3, depthwise->stride, 1);
    if (depthwise->relu6) {
      ops.append_eltwise(dnnl::algorithm::eltwise_clip, 0.f, 6.f);
    }
  }
  auto attr = user_scratchpad();
  attr.set_post_ops(ops);
  return attr;
}

Int8Kernels::Int8Kernels() {
  if (const char* forced = std::getenv("MNV2_ONEDNN_SIGNED_CODES")) {
    const std::string form(forced);
    if (form == "s8") {
      forced_ = SignedCodes::kS8;
    } else if (form == "shifted-u8") {
      forced_ = SignedCodes::kShiftedU8;
    } else if (!form.empty()) {
      throw std::invalid_argument("MNV2_ONEDNN_SIGNED_CODES='" + form +
                                  "': expected s8 or shifted-u8");
    }
  }
  const auto isa = static_cast<unsigned>(dnnl::get_effective_cpu_isa());
  const auto amx = static_cast<unsigned>(dnnl::cpu_isa::avx512_core_amx);
  amx_ = (isa & amx) == amx;
}

bool Int8Kernels::amx(const plain::Conv& conv,
                      int64_t input_channels,
                      bool residual) const {
  const bool shifted_sum =
      residual && signed_codes(conv.weight_shape[0]) == SignedCodes::kShiftedU8;
  return amx_ && conv.groups == 1 && input_channels >= kAmxMinInputChannels &&
         !shifted_sum;
}

SignedCodes Int8Kernels::signed_codes(int64_t channels) const {
  if (forced_) {
    return *forced_;
  }
  // Their reader has ReLU6, so only its input channels decide.
  return amx_ && channels >= kAmxMinInputChannels ? SignedCodes::kS8
                                                  : SignedCodes::kShiftedU8;
}

bool skip_amx(dnnl::primitive_desc& pd) {
  const auto on_amx = [&] {
    return std::string(pd.impl_info_str()).find("amx") != std::string::npos;
  };
  if (!on_amx()) {
    return true;
  }
  while (pd.next_impl()) {
    if (!on_amx() && !is_reference(pd)) {
      return true;
    }
  }
  return false;
}

void append_offset_rounding(dnnl::post_ops& ops, float output_step) {
  // Three steps, each rounded in fp32 as oneDNN rounds a destination scale
  // and zero point: y * (1 / step), + 128, then - 128 (exact).
  const auto offset = static_cast<float>(kSignedCodeOffset);
  ops.append_eltwise(dnnl::algorithm::eltwise_linear, 1.f / output_step, 0.f);
  ops.append_eltwise(dnnl::algorithm::eltwise_linear, 1.f, offset);
  ops.append_eltwise(dnnl::algorithm::eltwise_linear, 1.f, -offset);
}

Int8Operands int8_operands(const plain::Network& net,
                           const Int8Kernels& kernels) {
  Int8Operands out;
  float step = net.input_scale;
  bool signed_source = true;  // the image's codes are s8
  for (const auto& block : net.blocks) {
    for (const auto& conv : block.convs) {
      // As mnv2::is_depthwise decides which convolutions keep 8-bit codes.
      const bool dense = !(conv.groups > 1 && conv.weight_shape[1] == 1 &&
                           conv.groups == conv.weight_shape[0]);
      const int factor = signed_source && dense ? 2 : 1;
      auto& codes = out.codes.emplace_back(conv.codes);
      for (auto& c : codes) {
        c = static_cast<int8_t>(c * factor);
      }
      auto& scales = out.weight_scales.emplace_back(conv.weight_scales);
      for (auto& v : scales) {
        v /= static_cast<float>(factor);
      }
      out.source_steps.push_back(step);
      step = conv.output_scale;
      // u8 codes after ReLU6; without it, as their reader takes them
      signed_source =
          !conv.relu6 &&
          kernels.signed_codes(conv.weight_shape[0]) == SignedCodes::kS8;
    }
  }
  return out;
}

bool fusable(const plain::Conv& conv, const plain::Conv& next) {
  return conv.groups == 1 && conv.weight_shape[2] == 1 && conv.stride == 1 &&
         next.groups == next.weight_shape[0] &&
         next.groups == conv.weight_shape[0] && next.weight_shape[2] == 3 &&
         next.padding == 1 && !next.same_padding &&
         (next.stride == 1 || next.stride == 2);
}

ConvGeometry geometry(const plain::Conv& conv,
                      memory::dim c,
                      memory::dim h,
                      memory::dim w) {
  ConvGeometry g;
  g.out = conv.weight_shape[0];
  const memory::dim k = conv.weight_shape[2];
  const memory::dim s = conv.stride;
  g.weights =
      conv.groups == 1
          ? Dims{g.out, c, k, k}
          : Dims{conv.groups, g.out / conv.groups, c / conv.groups, k, k};
  g.weights_tag = conv.groups == 1 ? Tag::oihw : Tag::goihw;
  g.pad_l = {conv.padding, conv.padding};
  g.pad_r = g.pad_l;
  if (conv.same_padding) {
    const auto rows = tf_same_padding(h, k, s);
    const auto cols = tf_same_padding(w, k, s);
    g.pad_l = {rows[0], cols[0]};
    g.pad_r = {rows[1], cols[1]};
  }
  g.oh = (h + g.pad_l[0] + g.pad_r[0] - k) / s + 1;
  g.ow = (w + g.pad_l[1] + g.pad_r[1] - k) / s + 1;
  return g;
}

Tag activation_tag(OneDnnNetwork::Layout layout) {
  if (layout == OneDnnNetwork::Layout::kNhwc) {
    return Tag::nhwc;
  }
  const auto isa = static_cast<unsigned>(dnnl::get_effective_cpu_isa());
  const auto avx512 = static_cast<unsigned>(dnnl::cpu_isa::avx512_core);
  return (isa & avx512) == avx512 ? Tag::nChw16c : Tag::nChw8c;
}

bool is_reference(const dnnl::primitive_desc_base& pd) {
  return std::string(pd.impl_info_str()).rfind("ref", 0) == 0;
}

namespace {

// GCC's function multiversioning, as in nn/cpu_loops.h: the build targets
// plain x86-64; these clones vectorise for AVX-512 and AVX2.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define MNV2_CODE_CLONES \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define MNV2_CODE_CLONES
#endif

MNV2_CODE_CLONES void quantize_run(const float* __restrict x,
                                   int8_t* __restrict codes,
                                   int64_t count,
                                   float inverse) {
  for (int64_t i = 0; i < count; ++i) {
    float v = std::nearbyint(x[i] * inverse);
    v = v > -128.f ? v : -128.f;  // NaN fails both: -128
    v = v < 127.f ? v : 127.f;
    codes[i] = static_cast<int8_t>(v);
  }
}

// Adds each pixel's codes to `sums`, channel by channel.
MNV2_CODE_CLONES void add_pixels(const uint8_t* __restrict codes,
                                 int64_t pixels,
                                 int64_t channels,
                                 float* __restrict sums) {
  for (int64_t k = 0; k < channels; ++k) {
    sums[k] = 0.f;
  }
  for (int64_t p = 0; p < pixels; ++p) {
    const uint8_t* pixel = codes + p * channels;
    for (int64_t k = 0; k < channels; ++k) {
      sums[k] += static_cast<float>(pixel[k]);
    }
  }
}

}  // namespace

void pool_codes(const uint8_t* codes,
                int64_t images,
                int64_t pixels,
                int64_t channels,
                float step,
                float* pooled) {
  for (int64_t i = 0; i < images; ++i) {
    float* sums = pooled + i * channels;
    add_pixels(codes + i * pixels * channels, pixels, channels, sums);
    for (int64_t k = 0; k < channels; ++k) {
      sums[k] = sums[k] / static_cast<float>(pixels) * step;
    }
  }
}

void quantize_images(const float* images,
                     int8_t* codes,
                     int64_t count,
                     float step) {
  const float inverse = 1.f / step;
  constexpr int64_t kChunk = 16384;
  const int64_t chunks = (count + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) if (chunks > 1)
  for (int64_t k = 0; k < chunks; ++k) {
    const int64_t first = k * kChunk;
    quantize_run(images + first,
                 codes + first,
                 std::min(kChunk, count - first),
                 inverse);
  }
}

}  // namespace mnv2::onednn_layers
