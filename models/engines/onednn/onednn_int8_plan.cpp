// The int8 plan: the image quantized to s8 codes, each convolution on codes
// with its weight and activation steps (kernels and signed codes as
// Int8Kernels chooses), the last codes back to fp32 for pooling and the
// classifier.
#include "onednn_plan_writer.h"

#include <stdexcept>

namespace mnv2 {

Plan OneDnnNetwork::Impl::build_int8(const std::array<int64_t, 4>& sizes,
                                     bool channels_last,
                                     bool classify) {
  PlanWriter p(*this, sizes, channels_last);
  // int8 kernels read and write channels last. The images become s8 codes.
  const memory::desc codes_md({p.n, p.c, p.h, p.w}, kS8, Tag::nhwc);
  const memory codes_mem = p.slotted(codes_md, 0);
  if (channels_last) {
    // Element by element (onednn_layers::quantize_images).
    const memory images = p.current;
    const float step = net.input_scale;
    const int64_t count = p.n * p.c * p.h * p.w;
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
    const auto quantize = scaled_reorder(p.current_md, codes_md, DNNL_ARG_DST);
    p.push({dnnl::reorder(quantize),
            {{DNNL_ARG_FROM, p.current},
             {DNNL_ARG_TO, codes_mem},
             {DNNL_ARG_ATTR_SCALES | DNNL_ARG_DST, input_scale}}},
           quantize);
  }
  p.advance(codes_mem, codes_md, 0);
  float step_size = net.input_scale;  // the current activation's code step
  bool source_shifted = false;        // the image's codes are plain s8
  for (const auto& block : net.blocks) {
    p.start_block();
    const float block_step = step_size;
    for (size_t i = 0; i < block.convs.size(); ++i, ++p.layer) {
      const auto& conv = block.convs[i];
      const bool residual = block.residual && i + 1 == block.convs.size();
      const auto g = geometry(conv, p.c, p.h, p.w);
      // Outputs without ReLU6 are signed codes, kept as their reader takes
      // them (see Int8Kernels).
      const bool shifted_output =
          !conv.relu6 && int8_kernels.signed_codes(g.out) ==
                             onednn_layers::SignedCodes::kShiftedU8;
      const bool offset_rounding = !conv.relu6 && !shifted_output;
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
      const auto planned = [&](const memory::desc& src_md, Tag dst_tag) {
        auto pd = make(src_md, dst_tag);
        if (!int8_kernels.amx(conv, p.c, residual) &&
            !onednn_layers::skip_amx(pd)) {
          pd = make(src_md, dst_tag);  // AMX's is the only one
        }
        return pd;
      };
      auto pd = planned(p.current_md, Tag::nhwc);
      if (is_reference(pd)) {
        pd = planned(p.any_source(), Tag::any);
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
  // MobileNetV2 ends in a convolution with ReLU6: u8 codes, no offset.
  if (source_shifted) {
    throw std::logic_error("int8 plan: the last codes must follow ReLU6");
  }
  return p.finish(classify, step_size);
}

}  // namespace mnv2
