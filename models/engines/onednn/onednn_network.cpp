// The executor's state and running: weights reordered once per layout,
// plans kept per input shape, buffers grown to the largest plan.
#include "onednn_layers.h"
#include "onednn_network_impl.h"

#include <stdexcept>
#include <string>

namespace mnv2 {

using onednn_executor::kPlansKept;
using onednn_executor::kPooledSlot;
using onednn_executor::Plan;

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
