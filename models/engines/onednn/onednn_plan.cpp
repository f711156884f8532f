// Planning the executor's chain of primitives for one input shape: what fp32
// and int8 share (buffers, input reorders, destinations, pooling and the
// classifier) in PlanWriter; each precision's own layers in build_fp32
// (depthwise fusion, blocked layouts) and build_int8 (codes, scales).
#include "onednn_layers.h"
#include "onednn_network_impl.h"

#include <algorithm>
#include <optional>

namespace mnv2 {

namespace {

using dnnl::memory;
using onednn_executor::kF32;
using onednn_executor::kInputSlot;
using onednn_executor::kPooledSlot;
using onednn_executor::kS8;
using onednn_executor::kScratchpadSlot;
using onednn_executor::kU8;
using onednn_executor::Plan;
using onednn_executor::Step;
using onednn_layers::activation_tag;
using onednn_layers::append_offset_rounding;
using onednn_layers::ConvGeometry;
using onednn_layers::fusable;
using onednn_layers::fused_ops;
using onednn_layers::geometry;
using onednn_layers::is_reference;
using onednn_layers::kSignedCodeOffset;
using onednn_layers::user_scratchpad;
using Dims = memory::dims;
using Tag = memory::format_tag;
using ConvPd = dnnl::convolution_forward::primitive_desc;

// The activation buffer for a layer's output: neither its input's nor the
// block input's (kept for the residual add).
int free_slot(int input, int block_input) {
  int slot = 0;
  while (slot == input || slot == block_input) {
    ++slot;
  }
  return slot;
}

}  // namespace

// A plan being written: the current activation (its memory, layout and
// buffer), the block input kept for the residual add, the layer count.
struct OneDnnNetwork::Impl::PlanWriter {
  Impl& impl;
  Plan plan;
  memory::dim n, c, h, w;
  memory::desc current_md;
  memory current;
  int current_slot = kInputSlot;
  size_t layer = 0;  // index into the per-convolution weights and scales
  memory::desc block_md;
  memory block_input;
  int block_slot = kInputSlot;

  PlanWriter(Impl& owner,
             const std::array<int64_t, 4>& sizes,
             bool channels_last)
      : impl(owner), n(sizes[0]), c(sizes[1]), h(sizes[2]), w(sizes[3]) {
    plan.sizes = sizes;
    plan.channels_last = channels_last;
    current_md =
        memory::desc({n, c, h, w}, kF32, channels_last ? Tag::nhwc : Tag::nchw);
    plan.input = memory(current_md, impl.engine, DNNL_MEMORY_NONE);
    current = plan.input;
  }

  // A memory in buffer `slot`, which grows to hold it.
  memory slotted(const memory::desc& md, int slot) {
    plan.bytes[slot] = std::max(plan.bytes[slot], md.get_size());
    memory mem(md, impl.engine, DNNL_MEMORY_NONE);
    plan.slotted.emplace_back(mem, slot);
    return mem;
  }

  // `pd`'s primitive as the plan's next step, with its scratchpad (every
  // primitive here takes user_scratchpad()) in the scratchpad buffer.
  void push(Step step, const dnnl::primitive_desc_base& pd) {
    const auto scratchpad = pd.scratchpad_desc();
    if (scratchpad.get_size() > 0) {
      step.args[DNNL_ARG_SCRATCHPAD] = slotted(scratchpad, kScratchpadSlot);
    }
    plan.steps.push_back(std::move(step));
  }

  // A reorder of `from` into `to`, as the plan's next step.
  void push_reorder(const memory& from, const memory& to) {
    const dnnl::reorder::primitive_desc pd(impl.engine,
                                           from.get_desc(),
                                           impl.engine,
                                           to.get_desc(),
                                           user_scratchpad());
    push({dnnl::reorder(pd), {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}}}, pd);
  }

  void start_block() {
    block_md = current_md;
    block_input = current;
    block_slot = current_slot;
  }

  // The current activation's shape with any layout: lets the first layer
  // read the caller's images where a kernel can.
  memory::desc any_source() const {
    return memory::desc({n, c, h, w}, current_md.get_data_type(), Tag::any);
  }

  // A convolution of `conv` writing `dst_md`, or into the block input when
  // it ends a residual block.
  ConvPd convolution(const memory::desc& src_md,
                     const ConvGeometry& g,
                     memory::data_type weights_dt,
                     const memory::desc& dst_md,
                     const plain::Conv& conv,
                     bool residual,
                     const dnnl::primitive_attr& attr) const {
    return ConvPd(impl.engine,
                  dnnl::prop_kind::forward_inference,
                  dnnl::algorithm::convolution_direct,
                  src_md,
                  memory::desc(g.weights, weights_dt, Tag::any),
                  memory::desc({g.out}, kF32, Tag::x),
                  residual ? block_md : dst_md,
                  {conv.stride, conv.stride},
                  g.pad_l,
                  g.pad_r,
                  attr);
  }

  // Reorders the current activation into `wanted` first where they differ.
  void feed(const memory::desc& wanted) {
    if (wanted == current_md) {
      return;
    }
    const int slot = free_slot(current_slot, block_slot);
    memory reordered = slotted(wanted, slot);
    push_reorder(current, reordered);
    current = reordered;
    current_md = wanted;
    current_slot = slot;
  }

  // Where a layer writes: in place into the block input for the residual
  // add, else a free buffer.
  std::pair<memory, int> destination(const memory::desc& md, bool residual) {
    if (residual) {
      plan.bytes[block_slot] = std::max(plan.bytes[block_slot], md.get_size());
      return {block_input, block_slot};
    }
    const int slot = free_slot(current_slot, block_slot);
    return {slotted(md, slot), slot};
  }

  // The layer's step (source, weights as the primitive wants them, bias,
  // destination), to which the caller adds its own arguments.
  Step convolution_step(const ConvPd& pd,
                        const memory& dst,
                        const memory::desc& plain_weights,
                        const void* weight_values) {
    return {dnnl::convolution_forward(pd),
            {{DNNL_ARG_SRC, current},
             {DNNL_ARG_WEIGHTS,
              impl.weights_for(
                  layer, plain_weights, weight_values, pd.weights_desc())},
             {DNNL_ARG_BIAS, impl.biases[layer]},
             {DNNL_ARG_DST, dst}}};
  }

  void advance(const memory& dst, const memory::desc& md, int slot) {
    current = dst;
    current_md = md;
    current_slot = slot;
    const auto dims = md.get_dims();
    c = dims[1];
    h = dims[2];
    w = dims[3];
  }

  // Global average pooling, then the classifier (a matmul on the pooled
  // features as [n, c] rows) into the caller's [n, classes]; without a
  // classifier the features are copied out as [n, c].
  Plan finish() {
    const auto& net = impl.net;
    const dnnl::pooling_forward::primitive_desc pool_pd(
        impl.engine,
        dnnl::prop_kind::forward_inference,
        dnnl::algorithm::pooling_avg_exclude_padding,
        current_md,
        memory::desc({n, c, 1, 1}, kF32, Tag::any),
        {1, 1},
        {h, w},
        {0, 0},
        {0, 0},
        {0, 0},
        user_scratchpad());
    memory pooled = slotted(pool_pd.dst_desc(), kPooledSlot);
    push({dnnl::pooling_forward(pool_pd),
          {{DNNL_ARG_SRC, current}, {DNNL_ARG_DST, pooled}}},
         pool_pd);
    if (net.classes == 0) {
      plan.output = memory(memory::desc({n, c, 1, 1}, kF32, Tag::nchw),
                           impl.engine,
                           DNNL_MEMORY_NONE);
      push_reorder(pooled, plan.output);
      return std::move(plan);
    }
    // A matmul, not an inner product: oneDNN 3.2 runs the inner product as
    // a gemm that packs the 5 MB of weights on every call; its matmul keeps
    // them packed (AVX-512: 0.5 against 2.0 ms for 16 images, 0.09 against
    // 0.13 ms for one, docs/benchmarks.md; AVX2 runs the same gemm).
    const memory::desc features_md({n, c}, kF32, Tag::ab);
    const memory::desc nchw_md({n, c, 1, 1}, kF32, Tag::nchw);
    const memory::desc nhwc_md({n, c, 1, 1}, kF32, Tag::nhwc);  // the same
    int features_slot = kPooledSlot;
    if (pool_pd.dst_desc() != nchw_md && pool_pd.dst_desc() != nhwc_md) {
      // Blocked pooled features (the fp32 engine's layout) as [n, c] rows.
      features_slot = free_slot(current_slot, kInputSlot);
      push_reorder(pooled, slotted(nchw_md, features_slot));
    }
    const memory features = slotted(features_md, features_slot);
    const dnnl::matmul::primitive_desc fc_pd(
        impl.engine,
        features_md,
        memory::desc({c, net.classes}, kF32, Tag::any),
        memory::desc({1, net.classes}, kF32, Tag::ab),
        memory::desc({n, net.classes}, kF32, Tag::ab),
        user_scratchpad());
    plan.output = memory(fc_pd.dst_desc(), impl.engine, DNNL_MEMORY_NONE);
    const memory bias_row(memory::desc({1, net.classes}, kF32, Tag::ab),
                          impl.engine,
                          impl.classifier_bias.get_data_handle());
    push({dnnl::matmul(fc_pd),
          {{DNNL_ARG_SRC, features},
           {DNNL_ARG_WEIGHTS,
            impl.weights_for(impl.weights.size() - 1,
                             {{c, net.classes}, kF32, Tag::ba},
                             net.fc_weight.data(),
                             fc_pd.weights_desc())},
           {DNNL_ARG_BIAS, bias_row},
           {DNNL_ARG_DST, plan.output}}},
         fc_pd);
    return std::move(plan);
  }
};

Plan OneDnnNetwork::Impl::build_fp32(const std::array<int64_t, 4>& sizes,
                                     bool channels_last) {
  PlanWriter p(*this, sizes, channels_last);
  const Tag activations = activation_tag(layout);
  for (const auto& block : net.blocks) {
    p.start_block();
    for (size_t i = 0; i < block.convs.size(); ++i, ++p.layer) {
      const auto& conv = block.convs[i];
      const bool residual = block.residual && i + 1 == block.convs.size();
      const auto g = geometry(conv, p.c, p.h, p.w);
      // With a depthwise convolution fused, the primitive's dst_desc() is
      // the depthwise one's output.
      const auto make = [&](const memory::desc& src_md,
                            const plain::Conv* fused,
                            Tag dst_tag) {
        return p.convolution(
            src_md,
            g,
            kF32,
            memory::desc({p.n, g.out, g.oh, g.ow}, kF32, dst_tag),
            conv,
            residual,
            fused_ops(residual, conv.relu6, fused));
      };
      // The first layer reads the caller's layout where a kernel can;
      // later ones the blocked activations.
      const auto src_md =
          p.current_slot == kInputSlot ? p.any_source() : p.current_md;
      const plain::Conv* depthwise = fuse_depthwise &&
                                             i + 1 < block.convs.size() &&
                                             fusable(conv, block.convs[i + 1])
                                         ? &block.convs[i + 1]
                                         : nullptr;
      std::optional<ConvPd> pd;
      // Only where the input is already in the activations' layout and
      // an optimised kernel fuses the pair into that layout.
      if (depthwise != nullptr &&
          p.current_md ==
              memory::desc({p.n, p.c, p.h, p.w}, kF32, activations)) {
        try {
          pd = make(src_md, depthwise, activations);
          if (is_reference(*pd) ||
              pd->dst_desc() !=
                  memory::desc(pd->dst_desc().get_dims(), kF32, activations)) {
            pd.reset();
          }
        } catch (const dnnl::error&) {
          // No kernel here fuses the pair with this layout.
        }
      }
      if (!pd) {
        depthwise = nullptr;
        pd = make(src_md, nullptr, activations);
        if (is_reference(*pd)) {
          pd = make(p.any_source(), nullptr, Tag::any);
        }
      }
      p.feed(pd->src_desc());
      const auto [dst, dst_slot] = p.destination(pd->dst_desc(), residual);
      auto step = p.convolution_step(
          *pd, dst, {g.weights, kF32, g.weights_tag}, conv.weight.data());
      if (depthwise != nullptr) {
        ++i;
        ++p.layer;
        const auto dw = geometry(*depthwise, g.out, g.oh, g.ow);
        constexpr int kDw = DNNL_ARG_ATTR_POST_OP_DW;
        step.args[kDw | DNNL_ARG_WEIGHTS] = weights_for(
            p.layer,
            {dw.weights, kF32, dw.weights_tag},
            depthwise->weight.data(),
            pd->query_md(dnnl::query::exec_arg_md, kDw | DNNL_ARG_WEIGHTS));
        step.args[kDw | DNNL_ARG_BIAS] = biases[p.layer];
      }
      p.push(std::move(step), *pd);
      p.advance(dst, pd->dst_desc(), dst_slot);
    }
  }
  return p.finish();
}

Plan OneDnnNetwork::Impl::build_int8(const std::array<int64_t, 4>& sizes,
                                     bool channels_last) {
  PlanWriter p(*this, sizes, channels_last);
  // int8 kernels read and write channels last. The images become s8 codes.
  const memory::desc codes_md({p.n, p.c, p.h, p.w}, kS8, Tag::nhwc);
  const memory codes_mem = p.slotted(codes_md, 0);
  const auto quantize = scaled_reorder(p.current_md, codes_md, DNNL_ARG_DST);
  p.push({dnnl::reorder(quantize),
          {{DNNL_ARG_FROM, p.current},
           {DNNL_ARG_TO, codes_mem},
           {DNNL_ARG_ATTR_SCALES | DNNL_ARG_DST, input_scale}}},
         quantize);
  p.advance(codes_mem, codes_md, 0);
  float step_size = net.input_scale;  // the current activation's code step
  const bool shift = signed_codes == onednn_layers::SignedCodes::kShiftedU8;
  bool source_shifted = false;  // the image's codes are plain s8
  for (const auto& block : net.blocks) {
    p.start_block();
    const float block_step = step_size;
    for (size_t i = 0; i < block.convs.size(); ++i, ++p.layer) {
      const auto& conv = block.convs[i];
      const bool residual = block.residual && i + 1 == block.convs.size();
      const auto g = geometry(conv, p.c, p.h, p.w);
      // Outputs without ReLU6 are signed codes (see SignedCodes).
      const bool shifted_output = shift && !conv.relu6;
      const bool offset_rounding = !shift && !conv.relu6;
      const auto make = [&](const memory::desc& src_md, Tag dst_tag) {
        // An int8 sum adds the block input's codes times their step.
        auto attr = fused_ops(residual,
                              conv.relu6,
                              nullptr,
                              block_step,
                              shifted_output ? kSignedCodeOffset : 0);
        attr.set_scales_mask(DNNL_ARG_SRC, 0);
        attr.set_scales_mask(DNNL_ARG_WEIGHTS, conv.groups > 1 ? 3 : 1);
        if (offset_rounding) {
          auto ops = attr.get_post_ops();
          append_offset_rounding(ops, conv.output_scale);
          attr.set_post_ops(ops);
        } else {
          attr.set_scales_mask(DNNL_ARG_DST, 0);
        }
        if (source_shifted) {
          attr.set_zero_points_mask(DNNL_ARG_SRC, 0);
        }
        if (shifted_output) {
          attr.set_zero_points_mask(DNNL_ARG_DST, 0);
        }
        const bool unsigned_output = conv.relu6 || shifted_output;
        return p.convolution(
            src_md,
            g,
            kS8,
            memory::desc(
                {p.n, g.out, g.oh, g.ow}, unsigned_output ? kU8 : kS8, dst_tag),
            conv,
            residual,
            attr);
      };
      auto pd = make(p.current_md, Tag::nhwc);
      if (is_reference(pd)) {
        pd = make(p.any_source(), Tag::any);
      }
      p.feed(pd.src_desc());
      const auto [dst, dst_slot] = p.destination(pd.dst_desc(), residual);
      auto step = p.convolution_step(
          pd, dst, {g.weights, kS8, g.weights_tag}, codes[p.layer].data());
      step.args[DNNL_ARG_ATTR_SCALES | DNNL_ARG_SRC] = source_scales[p.layer];
      step.args[DNNL_ARG_ATTR_SCALES | DNNL_ARG_WEIGHTS] =
          weight_scales[p.layer];
      if (!offset_rounding) {
        step.args[DNNL_ARG_ATTR_SCALES | DNNL_ARG_DST] = output_scales[p.layer];
      }
      if (source_shifted) {
        step.args[DNNL_ARG_ATTR_ZERO_POINTS | DNNL_ARG_SRC] =
            signed_code_offset;
      }
      if (shifted_output) {
        step.args[DNNL_ARG_ATTR_ZERO_POINTS | DNNL_ARG_DST] =
            signed_code_offset;
      }
      source_shifted = shifted_output;
      step_size = conv.output_scale;
      p.push(std::move(step), pd);
      p.advance(dst, pd.dst_desc(), dst_slot);
    }
  }
  // The last activation's codes back to real values for the fp32 head.
  const memory::desc real_md({p.n, p.c, p.h, p.w}, kF32, Tag::nhwc);
  const int slot = free_slot(p.current_slot, kInputSlot);
  const memory real = p.slotted(real_md, slot);
  const auto dequantize =
      scaled_reorder(p.current_md, real_md, DNNL_ARG_SRC, source_shifted);
  Step step{dnnl::reorder(dequantize),
            {{DNNL_ARG_FROM, p.current},
             {DNNL_ARG_TO, real},
             {DNNL_ARG_ATTR_SCALES | DNNL_ARG_SRC, output_scales.back()}}};
  if (source_shifted) {
    step.args[DNNL_ARG_ATTR_ZERO_POINTS | DNNL_ARG_SRC] = signed_code_offset;
  }
  p.push(std::move(step), dequantize);
  p.advance(real, real_md, slot);
  return p.finish();
}

}  // namespace mnv2
