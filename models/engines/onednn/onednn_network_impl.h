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
#include <optional>
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
  // A row-split plan's marker: every part waits here for all the others.
  bool barrier = false;
};

// A memory that points into one of a lane's buffers, `offset` bytes in.
struct Slotted {
  memory mem;
  int slot = 0;
  size_t offset = 0;
};

// Part `index` of `count` of a row-split plan: it computes rows
// [rows * index / count, rows * (index + 1) / count) of each layer.
struct RowPart {
  int index = 0;
  int count = 1;
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
  std::vector<Slotted> slotted;                    // memories in the buffers
  memory input;  // the caller's images (from `input_offset` bytes)
  size_t input_offset = 0;
  memory output;  // the caller's output (from `output_offset` floats)
  size_t output_offset = 0;
  std::array<size_t, kBuffers> bytes{};  // needed per buffer
  uint64_t bound_to = 0;  // the buffers' generation the slots point into
  // A row-split plan (one image on several threads): no steps of its own;
  // part t, run by thread t, computes its rows of each layer in the shared
  // buffers, its barrier markers splitting the call into `phases`.
  std::vector<Plan> parts;
  size_t phases = 0;
};

// omp_set_num_threads(1) while in scope: oneDNN blocks a primitive's work
// for the thread count it is created under.
class OneThread {
 public:
  OneThread();
  ~OneThread();
  OneThread(const OneThread&) = delete;
  OneThread& operator=(const OneThread&) = delete;

 private:
  int previous_;
};

// A row-split plan cannot be made for this network and shape (a layer
// without a channels-last kernel, or fewer rows than parts).
struct RowsUnsupported {};

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
  // Reordered weights per convolution, per layout; then the classifier's,
  // and its columns for each part of a row-split plan after the first.
  std::vector<std::vector<std::pair<memory::desc, memory>>> weights;
  size_t classifier_index = 0;
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
    classifier_index = convs;
    weights.resize(convs + 1);
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
    if (int8() && sizes[0] == 1) {
      if (auto rows = build_int8_rows(sizes, channels_last, classify)) {
        return std::move(*rows);
      }
    }
    return int8() ? build_int8(sizes, channels_last, classify)
                  : build_fp32(sizes, channels_last, classify);
  }
  Plan build_fp32(const std::array<int64_t, 4>& sizes,
                  bool channels_last,
                  bool classify);
  Plan build_int8(const std::array<int64_t, 4>& sizes,
                  bool channels_last,
                  bool classify,
                  onednn_executor::RowPart part = {});
  // One image's rows split among the calling thread's OpenMP threads, each
  // running its part of every layer single-threaded, with a barrier before
  // each layer that reads another part's rows; nothing where they are
  // fewer than two or the network cannot be split (RowsUnsupported).
  std::optional<Plan> build_int8_rows(const std::array<int64_t, 4>& sizes,
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
  // A row-split plan, part t on lane t's stream, in lane 0's buffers.
  void run_parts(Plan& plan, const float* images, float* output);
};

}  // namespace mnv2
