// The fp32 plan: each convolution with its bias, ReLU6 and residual add,
// a 1x1 expansion with the depthwise convolution after it where oneDNN
// fuses them, activations in oneDNN's blocked layout. And the classifier
// alone, for a split batch's pooled features.
#include "onednn_plan_writer.h"

namespace mnv2 {

Plan OneDnnNetwork::Impl::build_fp32(const std::array<int64_t, 4>& sizes,
                                     bool channels_last,
                                     bool classify) {
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
  return p.finish(classify);
}

Plan OneDnnNetwork::Impl::build_head(int64_t images) {
  PlanWriter p(*this, {images, net.features, 1, 1}, false);
  p.plan.input = memory(memory::desc({images, net.features}, kF32, Tag::ab),
                        engine,
                        DNNL_MEMORY_NONE);
  p.push_classifier(p.plan.input);
  return std::move(p.plan);
}

}  // namespace mnv2
