#pragma once

// The oneDNN executor's state, shared by its two files: the network's
// prepared weights and scales, the plans per input shape and the buffers
// they run in (onednn_network.cpp), and the planning (onednn_plan.cpp).
// Sees no LibTorch header (see onednn_network.h).

#include "onednn_layers.h"
#include "onednn_network.h"

#include <oneapi/dnnl/dnnl.hpp>

#include <array>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <utility>
#include <vector>

#if DNNL_VERSION_MAJOR != 3
#error \
    "OneDnnNetwork is written against oneDNN 3.x (scripts/setup.sh installs 3.2)"
#endif

namespace mnv2 {

namespace onednn_executor {

using dnnl::memory;
using Dims = memory::dims;
using Tag = memory::format_tag;
constexpr auto kF32 = memory::data_type::f32;
constexpr auto kS8 = memory::data_type::s8;
constexpr auto kU8 = memory::data_type::u8;

// The executor's buffers: three for activations, one for the pooled
// features, one for the primitives' scratchpads; kInputSlot stands for the
// caller's images.
constexpr int kInputSlot = -1;
constexpr int kActivationSlots = 3;
constexpr int kPooledSlot = kActivationSlots;
constexpr int kScratchpadSlot = kPooledSlot + 1;
constexpr int kBuffers = kScratchpadSlot + 1;
constexpr size_t kPlansKept = 4;

struct Step {
  dnnl::primitive primitive;
  std::unordered_map<int, memory> args;
  std::function<void()> own{};  // where set, runs instead of the primitive
};

struct Plan {
  std::array<int64_t, 4> sizes{};
  bool channels_last = false;
  // Ends in the classifier, where the network has one; else writes the
  // pooled features (a share of a split batch: the classifier runs once for
  // the whole batch, build_head()).
  bool classify = true;
  int threads = 0;  // oneDNN blocks each primitive's work for this many
  std::vector<Step> steps;
  std::vector<OneDnnNetwork::StepInfo> described;  // one per step
  std::vector<std::pair<memory, int>> slotted;     // memories in the buffers
  memory input;                                    // the caller's images
  memory output;                                   // the caller's output
  std::array<size_t, kBuffers> bytes{};            // needed per buffer
  uint64_t bound_to = 0;  // the buffers' generation the slots point into
};

struct FreeDeleter {
  void operator()(void* p) const {
    std::free(p);
  }
};

// What one stream of calls owns: its plans and the buffers they run in. A
// batch split among threads runs one lane per thread, so that each thread's
// primitives write their own activations.
struct Lane {
  std::list<Plan> plans;  // most recently used first
  std::array<std::unique_ptr<void, FreeDeleter>, kBuffers> buffers;
  std::array<size_t, kBuffers> capacity{};
  uint64_t generation = 0;
  dnnl::stream stream;

  explicit Lane(const dnnl::engine& engine) : stream(engine) {}
};

}  // namespace onednn_executor

struct OneDnnNetwork::Impl {
  using Plan = onednn_executor::Plan;
  using Lane = onednn_executor::Lane;
  using memory = dnnl::memory;
  using Tag = memory::format_tag;
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
  onednn_layers::Int8Kernels int8_kernels;
  memory signed_code_offset;  // s32, the zero point of shifted u8 codes
  // Lane 0 runs unsplit calls; lane t runs thread t's shares of a split one.
  std::vector<std::unique_ptr<Lane>> lanes;
  // A split batch's pooled features, and the classifier's plans for them
  // (per batch size and thread count, most recently used first).
  std::vector<float> features;
  std::list<Plan> heads;
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

  // Whether a batch splits among the threads, each running its share alone.
  // int8: on an AMD EPYC (VNNI, 2 threads) that ran batches of 4-32 about 5%
  // faster than all threads on each layer, whose int8 work is small for its
  // synchronisation; fp32 ran level (docs/benchmarks.md).
  bool split_batches() const {
    return int8();
  }

  void prepare_int8() {
    int8_kernels = onednn_layers::Int8Kernels();
    auto operands = onednn_layers::int8_operands(net, int8_kernels);
    const memory::desc offset_md({1}, memory::data_type::s32, Tag::x);
    signed_code_offset =
        reordered(offset_md, &onednn_layers::kSignedCodeOffset, offset_md);
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
    const memory::desc md({static_cast<memory::dim>(values.size())},
                          memory::data_type::f32,
                          Tag::x);
    return reordered(md, values.data(), md);
  }

  // The plan for one input shape (onednn_plan.cpp): fp32 and int8 each
  // lay out their own chain, on the shared PlanWriter.
  Plan build(const std::array<int64_t, 4>& sizes,
             bool channels_last,
             bool classify) {
    return int8() ? build_int8(sizes, channels_last, classify)
                  : build_fp32(sizes, channels_last, classify);
  }
  Plan build_fp32(const std::array<int64_t, 4>& sizes,
                  bool channels_last,
                  bool classify);
  Plan build_int8(const std::array<int64_t, 4>& sizes,
                  bool channels_last,
                  bool classify);
  // The classifier alone, on `images` rows of pooled features.
  Plan build_head(int64_t images);
  struct PlanWriter;

  // A reorder that scales by the step of its source or destination
  // (`scaled`: DNNL_ARG_SRC or DNNL_ARG_DST).
  dnnl::reorder::primitive_desc scaled_reorder(const memory::desc& from,
                                               const memory::desc& to,
                                               int scaled) const {
    auto attr = onednn_layers::user_scratchpad();
    attr.set_scales_mask(scaled, 0);
    return {engine, from, engine, to, attr};
  }
  Lane& lane(size_t index) {
    while (lanes.size() <= index) {
      lanes.push_back(std::make_unique<Lane>(engine));
    }
    return *lanes[index];
  }
  Plan& plan_for(Lane& lane,
                 const std::array<int64_t, 4>& sizes,
                 bool channels_last,
                 bool classify = true);
  Plan& head_for(int64_t images);
  static void bind(Lane& lane, Plan& plan);
  static void run(Lane& lane, Plan& plan, const float* images, float* output);
};

}  // namespace mnv2
