// The int8 plan: the image quantized to s8 codes, each convolution on codes
// with its weight and activation steps (kernels and signed codes as
// Int8Kernels chooses), the last codes pooled, then the fp32 classifier.
// One image's plan may be split by rows among the threads (RowPart).
#include "onednn_plan_writer.h"

#include <omp.h>

#include <stdexcept>

namespace mnv2 {

using onednn_executor::OneThread;
using onednn_executor::RowPart;
using onednn_executor::RowsUnsupported;

namespace {

// The first and one-past-last of `rows` that `part` computes.
std::pair<memory::dim, memory::dim> part_rows(memory::dim rows, RowPart part) {
  return {rows * part.index / part.count, rows * (part.index + 1) / part.count};
}

}  // namespace

Plan OneDnnNetwork::Impl::build_int8(const std::array<int64_t, 4>& sizes,
                                     bool channels_last,
                                     bool classify,
                                     RowPart part) {
  PlanWriter p(*this, sizes, channels_last);
  const bool split = part.count > 1;
  // int8 kernels read and write channels last. The images (this part's
  // rows) become s8 codes.
  const memory::desc codes_md({p.n, p.c, p.h, p.w}, kS8, Tag::nhwc);
  const auto [first_row, end_row] = part_rows(p.h, part);
  const memory codes_mem = split
                               ? p.slotted_rows(codes_md, 0, first_row, end_row)
                               : p.slotted(codes_md, 0);
  if (split) {
    const memory::dim rows = end_row - first_row;
    const memory::desc images_md =
        channels_last ? memory::desc({1, p.c, rows, p.w}, kF32, Tag::nhwc)
                      : memory::desc({1, p.c, rows, p.w},
                                     kF32,
                                     {p.c * p.h * p.w, p.h * p.w, p.w, 1});
    p.plan.input = memory(images_md, engine, DNNL_MEMORY_NONE);
    p.plan.input_offset = static_cast<size_t>(first_row * p.w) *
                          (channels_last ? p.c : 1) * sizeof(float);
    p.current = p.plan.input;
    p.current_md = images_md;
  }
  if (channels_last) {
    // Element by element (onednn_layers::quantize_images).
    const memory images = p.current;
    const float step = net.input_scale;
    const int64_t count = codes_mem.get_desc().get_size();
    p.push_own(
        [images, codes_mem, step, count] {
          onednn_layers::quantize_images(
              static_cast<const float*>(images.get_data_handle()),
              static_cast<int8_t*>(codes_mem.get_data_handle()),
              count,
              step);
        },
        "reorder",
        "mnv2:quantize_images");
  } else {
    const auto quantize =
        scaled_reorder(p.current_md, codes_mem.get_desc(), DNNL_ARG_DST);
    p.push({dnnl::reorder(quantize),
            {{DNNL_ARG_FROM, p.current},
             {DNNL_ARG_TO, codes_mem},
             {DNNL_ARG_ATTR_SCALES | DNNL_ARG_DST, input_scale}}},
           quantize);
  }
  p.advance(codes_mem, codes_md, 0);
  if (split) {
    p.order(kInputSlot, false, 0, codes_md);
  }
  float step_size = net.input_scale;  // the current activation's code step
  bool source_shifted = false;        // the image's codes are plain s8
  for (const auto& block : net.blocks) {
    p.start_block();
    const float block_step = step_size;
    for (size_t i = 0; i < block.convs.size(); ++i, ++p.layer) {
      const auto& conv = block.convs[i];
      const bool residual = block.residual && i + 1 == block.convs.size();
      const auto full = geometry(conv, p.c, p.h, p.w);
      // A part computes its rows of the output from the input rows they
      // cover (another part's too, for a 3x3 kernel), padded only at the
      // image's edges.
      auto g = full;
      const auto [first, end] = part_rows(full.oh, part);
      const memory::dim kernel = conv.weight_shape[2];
      const memory::dim top = first * conv.stride - full.pad_l[0];
      const memory::dim bottom =
          (end - 1) * conv.stride - full.pad_l[0] + kernel;
      const memory::dim read_first = std::max<memory::dim>(top, 0);
      const memory::dim read_end = std::min<memory::dim>(bottom, p.h);
      if (split) {
        if (end <= first) {
          throw RowsUnsupported{};
        }
        g.oh = end - first;
        g.pad_l[0] = read_first - top;
        g.pad_r[0] = bottom - read_end;
      }
      // Outputs without ReLU6 are signed codes, kept as their reader takes
      // them (see Int8Kernels).
      const bool shifted_output =
          !conv.relu6 && int8_kernels.signed_codes(g.out) ==
                             onednn_layers::SignedCodes::kShiftedU8;
      const bool offset_rounding = !conv.relu6 && !shifted_output;
      const bool unsigned_output = conv.relu6 || shifted_output;
      // ReLU6 into u8 codes whose top code stands for 6 or less: the codes'
      // saturation at 0 and 255 clips alike, with no post-op (oneDNN's
      // kernels ran batch 32 5-10% faster without it, AMX Xeon). oneDNN
      // multiplies by the step's reciprocal r: a ReLU6 output of 6 or more
      // gives 6 * r > 254.5, which rounds to 255 or more.
      const bool clip = conv.relu6 && 6.f * (1.f / conv.output_scale) <= 254.5f;
      const memory::desc full_dst_md(
          {p.n, g.out, full.oh, g.ow}, unsigned_output ? kU8 : kS8, Tag::nhwc);
      const auto make = [&](const memory::desc& src_md, Tag dst_tag) {
        // An int8 sum adds the block input's codes times their step.
        auto attr = fused_ops(residual,
                              clip,
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
        return p.convolution(
            src_md,
            g,
            kS8,
            memory::desc(
                {p.n, g.out, g.oh, g.ow}, full_dst_md.get_data_type(), dst_tag),
            conv,
            residual && !split,
            attr);
      };
      const auto planned = [&](const memory::desc& src_md, Tag dst_tag) {
        auto pd = make(src_md, dst_tag);
        if (!int8_kernels.amx(conv, p.c, residual) &&
            !onednn_layers::skip_amx(pd)) {
          pd = make(src_md, dst_tag);  // AMX's is the only one
        }
        return pd;
      };
      memory source = p.current;
      int dst_slot =
          residual ? p.block_slot : free_slot(p.current_slot, p.block_slot);
      memory dst;
      std::optional<ConvPd> pd;
      if (split) {
        // Every layer on the parts' rows in place, or no split at all.
        source =
            p.slotted_rows(p.current_md, p.current_slot, read_first, read_end);
        dst = p.slotted_rows(full_dst_md, dst_slot, first, end);
        pd = planned(source.get_desc(), Tag::nhwc);
        if (is_reference(*pd) || pd->src_desc() != source.get_desc() ||
            pd->dst_desc() != dst.get_desc()) {
          throw RowsUnsupported{};
        }
        p.order(p.current_slot, kernel > 1, dst_slot, full_dst_md);
      } else {
        pd = planned(p.current_md, Tag::nhwc);
        if (is_reference(*pd)) {
          pd = planned(p.any_source(), Tag::any);
        }
        p.feed(pd->src_desc());
        std::tie(dst, dst_slot) = p.destination(pd->dst_desc(), residual);
        source = p.current;
      }
      auto step = p.convolution_step(
          *pd, dst, {g.weights, kS8, g.weights_tag}, codes[p.layer].data());
      step.args[DNNL_ARG_SRC] = source;
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
      p.push(std::move(step), *pd);
      p.advance(dst, split ? full_dst_md : pd->dst_desc(), dst_slot);
    }
  }
  // MobileNetV2 ends in a convolution with ReLU6: u8 codes, no offset.
  if (source_shifted) {
    throw std::logic_error("int8 plan: the last codes must follow ReLU6");
  }
  if (split) {
    // Each part pools all rows: after every part has written its own.
    p.order(p.current_slot,
            true,
            kPooledSlot,
            memory::desc({p.n, p.c}, kF32, Tag::ab));
    p.current = p.slotted_rows(p.current_md, p.current_slot, 0, p.h);
  }
  return p.finish(classify, step_size, part);
}

std::optional<Plan> OneDnnNetwork::Impl::build_int8_rows(
    const std::array<int64_t, 4>& sizes, bool channels_last, bool classify) {
  const int count = omp_get_max_threads();
  if (count < 2) {
    return std::nullopt;
  }
  Plan rows;
  rows.sizes = sizes;
  rows.channels_last = channels_last;
  try {
    const OneThread planning;
    for (int t = 0; t < count; ++t) {
      rows.parts.push_back(
          build_int8(sizes, channels_last, classify, {t, count}));
    }
  } catch (const RowsUnsupported&) {
    return std::nullopt;
  }
  // The parts share the activation buffers; each has its own stretch of
  // the scratchpad buffer.
  size_t stretch = 0;
  for (const auto& part : rows.parts) {
    stretch = std::max(stretch, (part.bytes[kScratchpadSlot] + 63) / 64 * 64);
    for (int slot = 0; slot < kScratchpadSlot; ++slot) {
      rows.bytes[slot] = std::max(rows.bytes[slot], part.bytes[slot]);
    }
  }
  rows.bytes[kScratchpadSlot] = stretch * rows.parts.size();
  for (size_t t = 0; t < rows.parts.size(); ++t) {
    for (auto& slotted : rows.parts[t].slotted) {
      if (slotted.slot == kScratchpadSlot) {
        slotted.offset = stretch * t;
      }
    }
  }
  const auto phases = [](const Plan& part) {
    size_t barriers = 0;
    for (const auto& step : part.steps) {
      barriers += step.barrier ? 1 : 0;
    }
    return barriers + 1;
  };
  rows.phases = phases(rows.parts[0]);
  for (const auto& part : rows.parts) {
    if (phases(part) != rows.phases) {
      throw std::logic_error("int8 row plan: parts with unlike barriers");
    }
  }
  rows.described = rows.parts[0].described;
  return rows;
}

}  // namespace mnv2
