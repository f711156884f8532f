// The executor's state and running: weights reordered once per layout,
// plans kept per input shape and lane, buffers grown to the largest plan;
// int8 batches split among the threads.
#include "onednn_layers.h"
#include "onednn_network_impl.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <exception>
#include <stdexcept>
#include <string>
#include <vector>

namespace mnv2 {

using onednn_executor::kBuffers;
using onednn_executor::kPlansKept;
using onednn_executor::Lane;
using onednn_executor::OneThread;
using onednn_executor::Plan;
using onednn_executor::Slotted;

namespace {

// A run of images of a batch.
struct Share {
  int64_t first = 0;
  int64_t size = 0;
};

// How a batch of `images` splits among `threads` threads: shares of two to
// four images, as many per thread, share i run by thread i % threads; or one
// share (the whole batch, all threads on each layer) where `split` is off or
// the batch is smaller than two images per thread. Against OpenVINO in one
// process (AMX Xeon, 2 threads), shares of four instead of one per thread
// ran batch 32 2-4% faster on AMX and on VNNI kernels and batch 16 4%
// faster on VNNI kernels, level on AMX; shares of one or two images ran
// slower, of eight no faster.
std::vector<Share> batch_shares(int64_t images, int threads, bool split) {
  constexpr int64_t kFewestPerShare = 2;
  constexpr int64_t kMostPerShare = 4;
  if (!split || threads < 2 || images < kFewestPerShare * threads) {
    return {{0, images}};
  }
  const int64_t rounds =
      (images + kMostPerShare * threads - 1) / (kMostPerShare * threads);
  const int64_t count = rounds * threads;
  std::vector<Share> shares;
  int64_t first = 0;
  for (int64_t i = 0; i < count; ++i) {
    const int64_t size = images / count + (i < images % count ? 1 : 0);
    shares.push_back({first, size});
    first += size;
  }
  return shares;
}

}  // namespace

OneThread::OneThread() : previous_(omp_get_max_threads()) {
  omp_set_num_threads(1);
}

OneThread::~OneThread() {
  omp_set_num_threads(previous_);
}

Plan& OneDnnNetwork::Impl::plan_for(Lane& lane,
                                    const std::array<int64_t, 4>& sizes,
                                    bool channels_last,
                                    bool classify) {
  // A plan made for other threads would run on them: a share's plan (one
  // thread) must not serve an unsplit call of the same size, nor a plan a
  // call after at::set_num_threads.
  const int threads = omp_get_max_threads();
  auto& plans = lane.plans;
  for (auto it = plans.begin(); it != plans.end(); ++it) {
    if (it->sizes == sizes && it->channels_last == channels_last &&
        it->classify == classify && it->threads == threads) {
      plans.splice(plans.begin(), plans, it);
      return plans.front();
    }
  }
  plans.push_front(build(sizes, channels_last, classify));
  plans.front().classify = classify;
  plans.front().threads = threads;
  if (plans.size() > kPlansKept) {
    plans.pop_back();
  }
  return plans.front();
}

Plan& OneDnnNetwork::Impl::head_for(int64_t images) {
  const int threads = omp_get_max_threads();
  for (auto it = heads.begin(); it != heads.end(); ++it) {
    if (it->sizes[0] == images && it->threads == threads) {
      heads.splice(heads.begin(), heads, it);
      return heads.front();
    }
  }
  heads.push_front(build_head(images));
  heads.front().threads = threads;
  if (heads.size() > kPlansKept) {
    heads.pop_back();
  }
  return heads.front();
}

void OneDnnNetwork::Impl::bind(Lane& lane, Plan& plan) {
  for (int slot = 0; slot < kBuffers; ++slot) {
    if (plan.bytes[slot] > lane.capacity[slot]) {
      void* p = std::aligned_alloc(64, (plan.bytes[slot] + 63) / 64 * 64);
      if (p == nullptr) {
        throw std::bad_alloc();
      }
      lane.buffers[slot].reset(p);
      lane.capacity[slot] = plan.bytes[slot];
      ++lane.generation;
    }
  }
  if (plan.bound_to == lane.generation) {
    return;
  }
  const auto point = [&lane](std::vector<Slotted>& slotted) {
    for (auto& [mem, slot, offset] : slotted) {
      mem.set_data_handle(static_cast<char*>(lane.buffers[slot].get()) +
                          offset);
    }
  };
  point(plan.slotted);
  for (auto& part : plan.parts) {
    point(part.slotted);
  }
  plan.bound_to = lane.generation;
}

namespace {

void execute_step(onednn_executor::Step& step, dnnl::stream& stream) {
  if (step.own) {
    step.own();
  } else {
    step.primitive.execute(stream, step.args);
  }
}

// Points the plan's input and output at the caller's, from its offsets.
void point_at_caller(Plan& plan, const float* images, float* output) {
  plan.input.set_data_handle(
      const_cast<char*>(reinterpret_cast<const char*>(images)) +
      plan.input_offset);
  if (plan.output) {
    plan.output.set_data_handle(output + plan.output_offset);
  }
}

}  // namespace

void OneDnnNetwork::Impl::run(Lane& lane,
                              Plan& plan,
                              const float* images,
                              float* output) {
  point_at_caller(plan, images, output);
  for (size_t i = 0; i < plan.steps.size(); ++i) {
    try {
      execute_step(plan.steps[i], lane.stream);
    } catch (const dnnl::error& e) {
      throw std::runtime_error("oneDNN: step " + std::to_string(i) + " of " +
                               std::to_string(plan.steps.size()) + ": " +
                               e.what());
    }
  }
  lane.stream.wait();
}

void OneDnnNetwork::Impl::run_parts(Plan& plan,
                                    const float* images,
                                    float* output) {
  auto& parts = plan.parts;
  const auto count = parts.size();
  for (auto& part : parts) {
    point_at_caller(part, images, output);
  }
  lane(count - 1);  // not created inside the parallel region
  std::vector<std::exception_ptr> errors(count);
  std::atomic<bool> failed{false};
  const int team_size = static_cast<int>(count);
#pragma omp parallel num_threads(team_size)
  {
    // A smaller team (a nested region: one thread) runs several parts,
    // phase by phase, so that each phase sees the last one's rows. Each
    // part's primitives were planned for one thread, and run on one.
    const OneThread alone;
    const auto team = static_cast<size_t>(omp_get_num_threads());
    const auto me = static_cast<size_t>(omp_get_thread_num());
    std::vector<size_t> next(count, 0);
    for (size_t phase = 0; phase < plan.phases; ++phase) {
      for (size_t t = me; t < count; t += team) {
        auto& steps = parts[t].steps;
        auto& stream = lanes[t]->stream;
        size_t& i = next[t];
        for (; i < steps.size() && !steps[i].barrier; ++i) {
          if (failed.load(std::memory_order_relaxed)) {
            continue;
          }
          try {
            execute_step(steps[i], stream);
          } catch (...) {
            errors[t] = std::current_exception();
            failed = true;
          }
        }
        ++i;  // past the barrier
        stream.wait();
      }
#pragma omp barrier
    }
  }
  for (const auto& error : errors) {
    if (error) {
      std::rethrow_exception(error);
    }
  }
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
    const auto shares =
        batch_shares(sizes[0], omp_get_max_threads(), impl_->split_batches());
    if (shares.size() == 1) {
      auto& lane = impl_->lane(0);
      auto& plan = impl_->plan_for(lane, sizes, channels_last);
      Impl::bind(lane, plan);
      if (plan.parts.empty()) {
        Impl::run(lane, plan, images, output);
      } else {
        impl_->run_parts(plan, images, output);
      }
      return;
    }
    // Lane t runs shares t, t + lanes, ... one after another, each alone on
    // one thread: its primitives run single-threaded inside the parallel
    // region, planned for one thread. Shares stop at the pooled features;
    // the classifier then runs once on the whole batch's, on all threads:
    // on each share it read its 5 MB of weights again (4.2% of a batch of
    // 32 on the AMX Xeon). The plans are built here, one after another:
    // building reorders weights into the store all lanes share.
    const int64_t image_values = sizes[1] * sizes[2] * sizes[3];
    const bool head = impl_->net.classes > 0;
    const int64_t share_outputs = head ? impl_->net.features : outputs();
    float* share_output = output;
    if (head) {
      impl_->features.resize(static_cast<size_t>(sizes[0] * share_outputs));
      share_output = impl_->features.data();
    }
    const auto lane_count =
        std::min(shares.size(), static_cast<size_t>(omp_get_max_threads()));
    std::vector<Plan*> plans;
    {
      const OneThread planning;
      for (size_t i = 0; i < shares.size(); ++i) {
        auto& lane = impl_->lane(i % lane_count);
        plans.push_back(
            &impl_->plan_for(lane,
                             {shares[i].size, sizes[1], sizes[2], sizes[3]},
                             channels_last,
                             false));
        Impl::bind(lane, *plans[i]);
      }
      // Binding a later plan may have grown (reallocated) a buffer an
      // earlier plan of the same lane points into: a plan's sizes per buffer
      // (its scratchpad too) need not grow with its share. Bind all again;
      // an unchanged lane returns at once.
      for (size_t i = 0; i < shares.size(); ++i) {
        Impl::bind(impl_->lane(i % lane_count), *plans[i]);
      }
    }
    std::vector<std::exception_ptr> errors(lane_count);
    const int team_size = static_cast<int>(lane_count);
#pragma omp parallel num_threads(team_size)
    {
      // A nested region (a caller's own) has a team of one, which runs all
      // the lanes. Their primitives were planned for one thread.
      const OneThread alone;
      const auto team = static_cast<size_t>(omp_get_num_threads());
      for (auto t = static_cast<size_t>(omp_get_thread_num()); t < lane_count;
           t += team) {
        try {
          for (size_t i = t; i < shares.size(); i += lane_count) {
            Impl::run(impl_->lane(t),
                      *plans[i],
                      images + shares[i].first * image_values,
                      share_output + shares[i].first * share_outputs);
          }
        } catch (...) {
          errors[t] = std::current_exception();
        }
      }
    }
    for (const auto& error : errors) {
      if (error) {
        std::rethrow_exception(error);
      }
    }
    if (head) {
      auto& lane = impl_->lane(0);
      auto& classifier = impl_->head_for(sizes[0]);
      Impl::bind(lane, classifier);
      Impl::run(lane, classifier, impl_->features.data(), output);
    }
  } catch (const dnnl::error& e) {
    throw std::runtime_error(std::string("oneDNN: ") + e.what());
  }
}

std::vector<OneDnnNetwork::StepInfo> OneDnnNetwork::steps(
    const std::array<int64_t, 4>& sizes, bool channels_last) const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  try {
    return impl_->plan_for(impl_->lane(0), sizes, channels_last).described;
  } catch (const dnnl::error& e) {
    throw std::runtime_error(std::string("oneDNN: ") + e.what());
  }
}

std::string onednn_library_version() {
  const dnnl_version_t* v = dnnl_version();
  return std::to_string(v->major) + "." + std::to_string(v->minor) + "." +
         std::to_string(v->patch);
}

bool onednn_int8_sum_fused() {
  const auto isa = static_cast<unsigned>(dnnl::get_effective_cpu_isa());
  const auto avx2 = static_cast<unsigned>(dnnl::cpu_isa::avx2);
  return (isa & avx2) == avx2;
}

}  // namespace mnv2
