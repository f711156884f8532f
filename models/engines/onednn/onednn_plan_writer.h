#pragma once

// The executor's plan writer: what the fp32 and int8 plans share (buffers,
// input reorders, destinations, pooling and the classifier). Each
// precision's own layers: build_fp32 (onednn_plan.cpp: depthwise fusion,
// blocked layouts), build_int8 (onednn_int8_plan.cpp: codes, scales).
#include "onednn_layers.h"
#include "onednn_network_impl.h"

#include <oneapi/dnnl/dnnl_debug.h>

#include <algorithm>
#include <functional>
#include <map>
#include <optional>
#include <set>

namespace mnv2 {

namespace onednn_plan {

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
inline int free_slot(int input, int block_input) {
  int slot = 0;
  while (slot == input || slot == block_input) {
    ++slot;
  }
  return slot;
}

}  // namespace onednn_plan

using namespace onednn_plan;  // NOLINT: the plan files' shared vocabulary

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
  // A row-split part's buffers since its last barrier: written, read
  // across parts (another part's rows), and touched at all; and the
  // activation each buffer holds (its rows' places in the buffer).
  std::set<int> written, read_across, touched;
  std::map<int, memory::desc> holds;

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
    return slotted_at(md, slot, 0, md.get_size());
  }

  // A memory `offset` bytes into buffer `slot`, which grows to `bytes`.
  memory slotted_at(const memory::desc& md,
                    int slot,
                    size_t offset,
                    size_t bytes) {
    plan.bytes[slot] = std::max(plan.bytes[slot], bytes);
    memory mem(md, impl.engine, DNNL_MEMORY_NONE);
    plan.slotted.push_back({mem, slot, offset});
    return mem;
  }

  // Rows [first, last) of the channels-last activation `full` ([1, c, h,
  // w]) in buffer `slot`, which grows to hold all of it.
  memory slotted_rows(const memory::desc& full,
                      int slot,
                      memory::dim first,
                      memory::dim last) {
    const auto dims = full.get_dims();
    const memory::desc rows_md(
        {1, dims[1], last - first, dims[3]}, full.get_data_type(), Tag::nhwc);
    const size_t row_bytes = full.get_size() / static_cast<size_t>(dims[2]);
    return slotted_at(rows_md, slot, row_bytes * first, full.get_size());
  }

  // Before a row-split part's step that reads buffer `reads` (`across`:
  // other parts' rows too) and writes activation `md` into buffer `writes`:
  // a barrier where another part may not have written what it reads, or
  // may still read or write there what this write overlaps. A part's rows
  // of an activation are its own, but a new activation of another row size
  // puts them where other parts' rows of the last one were. Each part
  // decides alike: from the layers, not from its rows.
  void order(int reads, bool across, int writes, const memory::desc& md) {
    const auto held = holds.find(writes);
    const bool moved = held == holds.end() || held->second != md;
    if ((across && written.count(reads) > 0) || read_across.count(writes) > 0 ||
        (moved && touched.count(writes) > 0)) {
      plan.steps.push_back({{}, {}, {}, true});
      written.clear();
      read_across.clear();
      touched.clear();
    }
    if (across) {
      read_across.insert(reads);
    }
    touched.insert(reads);
    touched.insert(writes);
    written.insert(writes);
    holds[writes] = md;
  }

  // `pd`'s primitive as the plan's next step, with its scratchpad (every
  // primitive here takes user_scratchpad()) in the scratchpad buffer.
  void push(Step step, const dnnl::primitive_desc_base& pd) {
    const auto scratchpad = pd.scratchpad_desc();
    if (scratchpad.get_size() > 0) {
      step.args[DNNL_ARG_SCRATCHPAD] = slotted(scratchpad, kScratchpadSlot);
    }
    plan.steps.push_back(std::move(step));
    const auto source = pd.src_desc();
    plan.described.push_back(
        {dnnl_prim_kind2str(static_cast<dnnl_primitive_kind_t>(pd.get_kind())),
         pd.impl_info_str(),
         source.get_ndims() > 1 ? source.get_dims()[1] : 0,
         source.get_data_type() == kU8});
  }

  // Our own code as the plan's next step, described as `kind` by
  // `implementation`.
  void push_own(std::function<void()> run,
                const char* kind,
                const char* implementation) {
    plan.steps.push_back({{}, {}, std::move(run), false});
    plan.described.push_back({kind, implementation, c, false});
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

  // Global average pooling, then (`classify`, where the network has a
  // classifier) the classifier into the caller's [n, classes]; else the
  // pooled features into the caller's [n, c]. `code_step`: the current
  // activation holds u8 codes of this step (int8), pooled as codes. Each
  // part of a row-split plan pools all rows into its own features and
  // computes its share of the classes (of the features: the first part).
  Plan finish(bool classify,
              float code_step = 0,
              onednn_executor::RowPart part = {}) {
    const bool features_out = impl.net.classes == 0 || !classify;
    if (features_out && part.index > 0) {
      return std::move(plan);
    }
    const memory::desc nchw_md({n, c, 1, 1}, kF32, Tag::nchw);
    const memory::desc rows_md({n, c}, kF32, Tag::ab);  // the same layout
    memory pooled;
    if (code_step > 0) {
      feed(memory::desc({n, c, h, w}, kU8, Tag::nhwc));
      pooled = features_out ? memory(rows_md, impl.engine, DNNL_MEMORY_NONE)
                            : slotted_at(rows_md,
                                         kPooledSlot,
                                         rows_md.get_size() * part.index,
                                         rows_md.get_size() * part.count);
      const memory codes = current;
      const int64_t images = n, pixels = h * w, channels = c;
      push_own(
          [codes, pooled, images, pixels, channels, code_step] {
            onednn_layers::pool_codes(
                static_cast<const uint8_t*>(codes.get_data_handle()),
                images,
                pixels,
                channels,
                code_step,
                static_cast<float*>(pooled.get_data_handle()));
          },
          "pooling",
          "mnv2:pool_codes");
    } else {
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
      const memory::desc nhwc_md({n, c, 1, 1}, kF32, Tag::nhwc);  // the same
      // Blocked pooled features (the fp32 engine's layout) need a reorder
      // into [n, c] rows.
      const bool rows =
          pool_pd.dst_desc() == nchw_md || pool_pd.dst_desc() == nhwc_md;
      const memory pool_dst =
          features_out && rows
              ? memory(pool_pd.dst_desc(), impl.engine, DNNL_MEMORY_NONE)
              : slotted(pool_pd.dst_desc(), kPooledSlot);
      push({dnnl::pooling_forward(pool_pd),
            {{DNNL_ARG_SRC, current}, {DNNL_ARG_DST, pool_dst}}},
           pool_pd);
      if (rows) {
        pooled = features_out ? pool_dst : slotted(rows_md, kPooledSlot);
      } else {
        const int slot = free_slot(current_slot, kInputSlot);
        pooled = features_out ? memory(nchw_md, impl.engine, DNNL_MEMORY_NONE)
                              : slotted(nchw_md, slot);
        push_reorder(pool_dst, pooled);
        if (!features_out) {
          pooled = slotted(rows_md, slot);
        }
      }
    }
    if (features_out) {
      plan.output = pooled;
    } else {
      push_classifier(pooled, part);
    }
    return std::move(plan);
  }

  // The classifier, a matmul on `features` ([n, c] rows), into the caller's
  // [n, classes]. A matmul, not an inner product: oneDNN 3.2 runs the inner
  // product as a gemm that packs the 5 MB of weights on every call; its
  // matmul keeps them packed (AVX-512: 0.5 against 2.0 ms for 16 images,
  // 0.09 against 0.13 ms for one, docs/benchmarks.md; AVX2 runs the same
  // gemm).
  // A row-split plan's part computes its share of the classes (one image).
  void push_classifier(const memory& features,
                       onednn_executor::RowPart part = {}) {
    const auto& net = impl.net;
    const memory::dim first = net.classes * part.index / part.count;
    const memory::dim classes =
        net.classes * (part.index + 1) / part.count - first;
    const dnnl::matmul::primitive_desc fc_pd(
        impl.engine,
        memory::desc({n, c}, kF32, Tag::ab),
        memory::desc({c, classes}, kF32, Tag::any),
        memory::desc({1, classes}, kF32, Tag::ab),
        memory::desc({n, classes}, kF32, Tag::ab),
        user_scratchpad());
    plan.output = memory(fc_pd.dst_desc(), impl.engine, DNNL_MEMORY_NONE);
    plan.output_offset = static_cast<size_t>(first);
    const memory bias_row(
        memory::desc({1, classes}, kF32, Tag::ab),
        impl.engine,
        static_cast<float*>(impl.classifier_bias.get_data_handle()) + first);
    const size_t index = impl.classifier_index + part.index;
    if (impl.weights.size() <= index) {
      impl.weights.resize(index + 1);
    }
    push({dnnl::matmul(fc_pd),
          {{DNNL_ARG_SRC, features},
           {DNNL_ARG_WEIGHTS,
            impl.weights_for(index,
                             {{c, classes}, kF32, Tag::ba},
                             net.fc_weight.data() + first * c,
                             fc_pd.weights_desc())},
           {DNNL_ARG_BIAS, bias_row},
           {DNNL_ARG_DST, plan.output}}},
         fc_pd);
  }
};

}  // namespace mnv2
