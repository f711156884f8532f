#include "onednn_network.h"
#include "onednn_layers.h"

#include <oneapi/dnnl/dnnl.hpp>

#include <algorithm>
#include <cstdlib>
#include <list>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#if DNNL_VERSION_MAJOR != 3
#error \
    "OneDnnNetwork is written against oneDNN 3.x (scripts/setup.sh installs 3.2)"
#endif

namespace mnv2 {

namespace {

using dnnl::memory;
using Dims = memory::dims;
using Tag = memory::format_tag;
constexpr auto kF32 = memory::data_type::f32;
constexpr auto kS8 = memory::data_type::s8;
constexpr auto kU8 = memory::data_type::u8;

// The executor's buffers: three for activations, one for the pooled
// features; kInputSlot stands for the caller's images.
constexpr int kInputSlot = -1;
constexpr int kActivationSlots = 3;
constexpr int kPooledSlot = kActivationSlots;
constexpr size_t kPlansKept = 4;

struct Step {
  dnnl::primitive primitive;
  std::unordered_map<int, memory> args;
};

struct Plan {
  std::array<int64_t, 4> sizes{};
  bool channels_last = false;
  std::vector<Step> steps;
  std::vector<std::pair<memory, int>> slotted;       // memories in the buffers
  memory input;                                      // the caller's images
  memory output;                                     // the caller's output
  std::array<size_t, kActivationSlots + 1> bytes{};  // needed per buffer
  uint64_t bound_to = 0;  // the buffers' generation the slots point into
};

struct FreeDeleter {
  void operator()(void* p) const {
    std::free(p);
  }
};

}  // namespace

struct OneDnnNetwork::Impl {
  plain::Network net;
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
  // Reordered weights per convolution, per layout.
  std::vector<std::vector<std::pair<memory::desc, memory>>> weights;
  std::vector<memory> biases;
  memory classifier_bias;
  // int8 networks: each convolution's scales as oneDNN reads them, and the
  // codes as passed (doubled where the source is s8, see prepare_int8()).
  std::vector<memory> source_scales, weight_scales, output_scales;
  std::vector<std::vector<int8_t>> codes;
  memory input_scale;
  std::list<Plan> plans;  // most recently used first
  std::array<std::unique_ptr<void, FreeDeleter>, kActivationSlots + 1> buffers;
  std::array<size_t, kActivationSlots + 1> capacity{};
  uint64_t generation = 0;
  std::mutex mutex;

  bool fuse_depthwise;
  Layout layout;

  Impl(plain::Network network, bool fuse, Layout activations)
      : net(std::move(network)), fuse_depthwise(fuse), layout(activations) {
    size_t convs = 0;
    for (const auto& block : net.blocks) {
      convs += block.convs.size();
    }
    weights.resize(convs + 1);  // the classifier's last
    if (net.classes > 0) {
      classifier_bias = bias(net.fc_bias);
    }
    if (int8()) {
      // oneDNN's depthwise post-op cannot take the per-layer scales here.
      fuse_depthwise = false;
      input_scale = bias({net.input_scale});
      prepare_int8();
    }
  }

  bool int8() const {
    return net.input_scale > 0;
  }

  void prepare_int8() {
    auto operands = onednn_layers::int8_operands(net);
    codes = std::move(operands.codes);
    size_t n = 0;
    for (const auto& block : net.blocks) {
      for (const auto& conv : block.convs) {
        weight_scales.push_back(bias(operands.weight_scales[n]));
        source_scales.push_back(bias({operands.source_steps[n]}));
        output_scales.push_back(bias({conv.output_scale}));
        ++n;
      }
    }
  }

  memory reordered(const memory::desc& plain_md,
                   const void* values,
                   const memory::desc& wanted) {
    memory source(plain_md, engine, const_cast<void*>(values));
    memory target(wanted, engine);
    dnnl::reorder(source, target).execute(stream, source, target);
    stream.wait();
    return target;
  }

  // The weights of layer `index` in the layout a primitive asked for.
  memory weights_for(size_t index,
                     const memory::desc& plain_md,
                     const void* values,
                     const memory::desc& wanted) {
    for (const auto& [md, mem] : weights[index]) {
      if (md == wanted) {
        return mem;
      }
    }
    auto mem = reordered(plain_md, values, wanted);
    weights[index].emplace_back(wanted, mem);
    return mem;
  }

  memory bias(const std::vector<float>& values) {
    const memory::desc md(
        {static_cast<memory::dim>(values.size())}, kF32, Tag::x);
    return reordered(md, values.data(), md);
  }

  Plan build(const std::array<int64_t, 4>& sizes, bool channels_last);

  // A reorder that scales by the step of its source or destination
  // (`scaled`: DNNL_ARG_SRC or DNNL_ARG_DST).
  dnnl::reorder::primitive_desc scaled_reorder(const memory::desc& from,
                                               const memory::desc& to,
                                               int scaled) const {
    dnnl::primitive_attr attr;
    attr.set_scales_mask(scaled, 0);
    return {engine, from, engine, to, attr};
  }
  Plan& plan_for(const std::array<int64_t, 4>& sizes, bool channels_last);
  void bind(Plan& plan);
};

namespace {

using onednn_layers::activation_tag;
using onednn_layers::fusable;
using onednn_layers::fused_ops;
using onednn_layers::geometry;
using onednn_layers::is_reference;

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

Plan OneDnnNetwork::Impl::build(const std::array<int64_t, 4>& sizes,
                                bool channels_last) {
  using dnnl::convolution_forward;
  // int8 kernels read and write channels last.
  const Tag activations = int8() ? Tag::nhwc : activation_tag(layout);
  Plan plan;
  plan.sizes = sizes;
  plan.channels_last = channels_last;
  const memory::dim n = sizes[0];
  memory::dim c = sizes[1], h = sizes[2], w = sizes[3];
  const memory::desc input_md(
      {n, c, h, w}, kF32, channels_last ? Tag::nhwc : Tag::nchw);
  auto need = [&](int slot, const memory::desc& md) {
    plan.bytes[slot] = std::max(plan.bytes[slot], md.get_size());
  };
  auto slotted = [&](const memory::desc& md, int slot) {
    memory mem(md, engine, DNNL_MEMORY_NONE);
    plan.slotted.emplace_back(mem, slot);
    return mem;
  };
  plan.input = memory(input_md, engine, DNNL_MEMORY_NONE);

  memory::desc current_md = input_md;
  memory current = plan.input;
  int current_slot = kInputSlot;
  float current_scale = net.input_scale;  // int8: the activation's code step
  if (int8()) {
    // The images as s8 codes.
    const memory::desc codes_md({n, c, h, w}, kS8, activations);
    memory codes_mem = slotted(codes_md, 0);
    need(0, codes_md);
    plan.steps.push_back(
        {dnnl::reorder(scaled_reorder(input_md, codes_md, DNNL_ARG_DST)),
         {{DNNL_ARG_FROM, current},
          {DNNL_ARG_TO, codes_mem},
          {DNNL_ARG_ATTR_SCALES | DNNL_ARG_DST, input_scale}}});
    current = codes_mem;
    current_md = codes_md;
    current_slot = 0;
  }
  size_t layer = 0;
  for (const auto& block : net.blocks) {
    const int block_slot = current_slot;
    const memory::desc block_md = current_md;
    const memory block_input = current;
    const float block_scale = current_scale;
    for (size_t i = 0; i < block.convs.size(); ++i, ++layer) {
      const auto& conv = block.convs[i];
      const bool residual = block.residual && i + 1 == block.convs.size();
      const auto g = geometry(conv, c, h, w);
      const auto weights_dt = int8() ? kS8 : kF32;
      const auto dst_dt = !int8() ? kF32 : conv.relu6 ? kU8 : kS8;
      // The destination: the block input for the residual add in place,
      // otherwise `dst_tag` (with a depthwise convolution fused, the
      // primitive's dst_desc() is the depthwise one's output).
      auto make = [&](const memory::desc& src_md,
                      const plain::Conv* fused,
                      Tag dst_tag) {
        // An int8 sum adds the block input's codes times their step.
        auto attr =
            fused_ops(residual, conv.relu6, fused, int8() ? block_scale : 1.f);
        if (int8()) {
          attr.set_scales_mask(DNNL_ARG_SRC, 0);
          attr.set_scales_mask(DNNL_ARG_WEIGHTS, conv.groups > 1 ? 3 : 1);
          attr.set_scales_mask(DNNL_ARG_DST, 0);
        }
        return convolution_forward::primitive_desc(
            engine,
            dnnl::prop_kind::forward_inference,
            dnnl::algorithm::convolution_direct,
            src_md,
            memory::desc(g.weights, weights_dt, Tag::any),
            memory::desc({g.out}, kF32, Tag::x),
            residual ? block_md
                     : memory::desc({n, g.out, g.oh, g.ow}, dst_dt, dst_tag),
            {conv.stride, conv.stride},
            g.pad_l,
            g.pad_r,
            attr);
      };
      // The input layout is the caller's (the first layer reads it where a
      // kernel can); later ones are the blocked activations. Where no
      // optimised kernel reads a layout, reorder it first.
      const memory::desc any_src(
          {n, c, h, w}, current_md.get_data_type(), Tag::any);
      const auto& src_md = current_slot == kInputSlot ? any_src : current_md;
      const plain::Conv* depthwise = fuse_depthwise &&
                                             i + 1 < block.convs.size() &&
                                             fusable(conv, block.convs[i + 1])
                                         ? &block.convs[i + 1]
                                         : nullptr;
      std::optional<convolution_forward::primitive_desc> pd;
      // Only where the input is already in the activations' layout and
      // an optimised kernel fuses the pair into that layout.
      if (depthwise != nullptr &&
          current_md == memory::desc({n, c, h, w}, kF32, activations)) {
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
          pd = make(any_src, nullptr, Tag::any);
        }
      }
      if (pd->src_desc() != current_md) {
        const int slot = free_slot(current_slot, block_slot);
        memory reordered_input = slotted(pd->src_desc(), slot);
        need(slot, pd->src_desc());
        plan.steps.push_back(
            {dnnl::reorder(current, reordered_input),
             {{DNNL_ARG_FROM, current}, {DNNL_ARG_TO, reordered_input}}});
        current = reordered_input;
        current_slot = slot;
      }
      const int dst_slot =
          residual ? block_slot : free_slot(current_slot, block_slot);
      memory dst = residual ? block_input : slotted(pd->dst_desc(), dst_slot);
      need(dst_slot, pd->dst_desc());
      const void* weight_values =
          int8() ? static_cast<const void*>(codes[layer].data())
                 : conv.weight.data();
      Step step{convolution_forward(*pd),
                {{DNNL_ARG_SRC, current},
                 {DNNL_ARG_WEIGHTS,
                  weights_for(layer,
                              {g.weights, weights_dt, g.weights_tag},
                              weight_values,
                              pd->weights_desc())},
                 {DNNL_ARG_BIAS, biases[layer]},
                 {DNNL_ARG_DST, dst}}};
      if (int8()) {
        step.args[DNNL_ARG_ATTR_SCALES | DNNL_ARG_SRC] = source_scales[layer];
        step.args[DNNL_ARG_ATTR_SCALES | DNNL_ARG_WEIGHTS] =
            weight_scales[layer];
        step.args[DNNL_ARG_ATTR_SCALES | DNNL_ARG_DST] = output_scales[layer];
        current_scale = conv.output_scale;
      }
      if (depthwise != nullptr) {
        ++i;
        ++layer;
        const auto dw = geometry(*depthwise, g.out, g.oh, g.ow);
        constexpr int kDw = DNNL_ARG_ATTR_POST_OP_DW;
        step.args[kDw | DNNL_ARG_WEIGHTS] = weights_for(
            layer,
            {dw.weights, kF32, dw.weights_tag},
            depthwise->weight.data(),
            pd->query_md(dnnl::query::exec_arg_md, kDw | DNNL_ARG_WEIGHTS));
        step.args[kDw | DNNL_ARG_BIAS] = biases[layer];
      }
      plan.steps.push_back(std::move(step));
      current = dst;
      current_md = pd->dst_desc();
      current_slot = dst_slot;
      const auto out_dims = current_md.get_dims();
      c = out_dims[1];
      h = out_dims[2];
      w = out_dims[3];
    }
  }

  if (int8()) {
    // The last activation's codes back to real values for the fp32 head.
    const memory::desc real_md({n, c, h, w}, kF32, Tag::nhwc);
    const int slot = free_slot(current_slot, kInputSlot);
    memory real = slotted(real_md, slot);
    need(slot, real_md);
    plan.steps.push_back(
        {dnnl::reorder(scaled_reorder(current_md, real_md, DNNL_ARG_SRC)),
         {{DNNL_ARG_FROM, current},
          {DNNL_ARG_TO, real},
          {DNNL_ARG_ATTR_SCALES | DNNL_ARG_SRC, output_scales.back()}}});
    current = real;
    current_md = real_md;
    current_slot = slot;
  }
  // Global average pooling, then the classifier (an inner product on the
  // pooled features as they lie) into the caller's [n, classes]; without a
  // classifier the features are copied out as [n, c].
  const dnnl::pooling_forward::primitive_desc pool_pd(
      engine,
      dnnl::prop_kind::forward_inference,
      dnnl::algorithm::pooling_avg_exclude_padding,
      current_md,
      memory::desc({n, c, 1, 1}, kF32, Tag::any),
      {1, 1},
      {h, w},
      {0, 0},
      {0, 0},
      {0, 0});
  memory pooled = slotted(pool_pd.dst_desc(), kPooledSlot);
  need(kPooledSlot, pool_pd.dst_desc());
  plan.steps.push_back({dnnl::pooling_forward(pool_pd),
                        {{DNNL_ARG_SRC, current}, {DNNL_ARG_DST, pooled}}});
  if (net.classes == 0) {
    plan.output = memory(
        memory::desc({n, c, 1, 1}, kF32, Tag::nchw), engine, DNNL_MEMORY_NONE);
    plan.steps.push_back(
        {dnnl::reorder(pooled, plan.output),
         {{DNNL_ARG_FROM, pooled}, {DNNL_ARG_TO, plan.output}}});
    return plan;
  }
  const Dims fc_weights{net.classes, c, 1, 1};
  const dnnl::inner_product_forward::primitive_desc fc_pd(
      engine,
      dnnl::prop_kind::forward_inference,
      pool_pd.dst_desc(),
      memory::desc(fc_weights, kF32, Tag::any),
      memory::desc({net.classes}, kF32, Tag::x),
      memory::desc({n, net.classes}, kF32, Tag::nc));
  plan.output = memory(fc_pd.dst_desc(), engine, DNNL_MEMORY_NONE);
  plan.steps.push_back({dnnl::inner_product_forward(fc_pd),
                        {{DNNL_ARG_SRC, pooled},
                         {DNNL_ARG_WEIGHTS,
                          weights_for(weights.size() - 1,
                                      {fc_weights, kF32, Tag::oihw},
                                      net.fc_weight.data(),
                                      fc_pd.weights_desc())},
                         {DNNL_ARG_BIAS, classifier_bias},
                         {DNNL_ARG_DST, plan.output}}});
  return plan;
}

Plan& OneDnnNetwork::Impl::plan_for(const std::array<int64_t, 4>& sizes,
                                    bool channels_last) {
  for (auto it = plans.begin(); it != plans.end(); ++it) {
    if (it->sizes == sizes && it->channels_last == channels_last) {
      plans.splice(plans.begin(), plans, it);
      return plans.front();
    }
  }
  plans.push_front(build(sizes, channels_last));
  if (plans.size() > kPlansKept) {
    plans.pop_back();
  }
  return plans.front();
}

void OneDnnNetwork::Impl::bind(Plan& plan) {
  for (int slot = 0; slot <= kPooledSlot; ++slot) {
    if (plan.bytes[slot] > capacity[slot]) {
      void* p = std::aligned_alloc(64, (plan.bytes[slot] + 63) / 64 * 64);
      if (p == nullptr) {
        throw std::bad_alloc();
      }
      buffers[slot].reset(p);
      capacity[slot] = plan.bytes[slot];
      ++generation;
    }
  }
  if (plan.bound_to == generation) {
    return;
  }
  for (auto& [mem, slot] : plan.slotted) {
    mem.set_data_handle(buffers[slot].get());
  }
  plan.bound_to = generation;
}

OneDnnNetwork::OneDnnNetwork(plain::Network network,
                             bool fuse_depthwise,
                             Layout layout)
    : impl_(
          std::make_unique<Impl>(std::move(network), fuse_depthwise, layout)) {
  for (const auto& block : impl_->net.blocks) {
    for (const auto& conv : block.convs) {
      impl_->biases.push_back(impl_->bias(conv.bias));
    }
  }
}

OneDnnNetwork::~OneDnnNetwork() = default;

int64_t OneDnnNetwork::outputs() const {
  return impl_->net.classes > 0 ? impl_->net.classes : impl_->net.features;
}

void OneDnnNetwork::forward(const float* images,
                            const std::array<int64_t, 4>& sizes,
                            bool channels_last,
                            float* output) const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  try {
    auto& plan = impl_->plan_for(sizes, channels_last);
    impl_->bind(plan);
    plan.input.set_data_handle(const_cast<float*>(images));
    plan.output.set_data_handle(output);
    for (size_t i = 0; i < plan.steps.size(); ++i) {
      try {
        plan.steps[i].primitive.execute(impl_->stream, plan.steps[i].args);
      } catch (const dnnl::error& e) {
        throw std::runtime_error("oneDNN: step " + std::to_string(i) + " of " +
                                 std::to_string(plan.steps.size()) + ": " +
                                 e.what());
      }
    }
    impl_->stream.wait();
  } catch (const dnnl::error& e) {
    throw std::runtime_error(std::string("oneDNN: ") + e.what());
  }
}

std::string onednn_library_version() {
  const dnnl_version_t* v = dnnl_version();
  return std::to_string(v->major) + "." + std::to_string(v->minor) + "." +
         std::to_string(v->patch);
}

}  // namespace mnv2
