#include "distributed/data_parallel.h"

#include "common/errors.h"

#include <torch/torch.h>
#include <torch/csrc/distributed/c10d/comm.hpp>
#include <torch/csrc/distributed/c10d/default_comm_hooks.hpp>
#include <torch/csrc/distributed/c10d/reducer.hpp>

#include <algorithm>

namespace mnv2 {

namespace {

/// DDP's bf16_compress_hook: the bucket travels as bf16 (half the bytes),
/// divided by the world size first, and comes back in its own dtype.
class Bf16CompressHook : public c10d::CppCommHookInterface<
                             c10::intrusive_ptr<c10d::ProcessGroup>> {
 public:
  using CppCommHookInterface::CppCommHookInterface;

  c10::intrusive_ptr<c10::ivalue::Future> runHook(
      c10d::GradBucket& bucket) override {
    auto compressed = bucket.getBufferRef().to(torch::kBFloat16);
    compressed.div_(state_->getSize());
    std::vector<at::Tensor> tensors = {compressed};
    auto reduced = state_->allreduce(tensors)->getFuture();
    auto target = bucket.getBufferRef();
    return reduced->then(
        [target](c10::ivalue::Future& done) {
          target.copy_(done.value().toTensorVector()[0]);
          return c10::IValue(target);
        },
        reduced->elementType());
  }
};

}  // namespace

DataParallel::DataParallel(torch::nn::Module& module,
                           Distributed& distributed,
                           const DataParallelOptions& options)
    : distributed_(distributed) {
  std::unordered_map<size_t, std::string> names;
  for (const auto& item : module.named_parameters()) {
    if (item.value().requires_grad()) {
      names[parameters_.size()] = item.key();
      parameters_.push_back(item.value());
    }
  }
  for (const auto& buffer : module.buffers()) {
    buffers_.push_back(buffer);
  }
  TORCH_CHECK(!parameters_.empty(), "DataParallel: no trainable parameters");
  const auto& group = distributed_.group();

  // As DDP's constructor: rank 0's state everywhere, then a check that every
  // rank has the same parameters (count, shapes, dtypes).
  std::vector<torch::Tensor> state;
  for (const auto& p : module.parameters()) {
    state.push_back(p.detach());
  }
  state.insert(state.end(), buffers_.begin(), buffers_.end());
  distributed_.broadcast_from_rank0(state);
  c10d::verify_params_across_processes(group, parameters_, std::nullopt);

  const auto first_cap =
      static_cast<int64_t>(options.first_bucket_mb * 1024 * 1024);
  const auto cap = static_cast<int64_t>(options.bucket_mb * 1024 * 1024);
  auto [buckets, limits] = c10d::compute_bucket_assignment_by_size(
      parameters_,
      {static_cast<size_t>(first_cap), static_cast<size_t>(cap)},
      std::vector<bool>(parameters_.size(), false));
  // Gradients come in roughly the reverse order of the forward pass.
  std::reverse(buckets.begin(), buckets.end());
  std::vector<int64_t> limit_list(limits.rbegin(), limits.rend());
  reducer_ = std::make_unique<c10d::Reducer>(
      parameters_,
      std::move(buckets),
      group,
      std::vector<bool>(parameters_.size(), false),
      cap,
      /*find_unused_parameters=*/false,
      /*gradient_as_bucket_view=*/false,
      names,
      first_cap,
      /*skip_all_reduce_unused_params=*/false,
      /*use_python_reducer=*/false,
      limit_list);
  if (options.comm_hook == "fp16") {
    reducer_->register_builtin_comm_hook(
        c10d::BuiltinCommHookType::FP16_COMPRESS);
  } else if (options.comm_hook == "bf16") {
    reducer_->register_comm_hook(std::make_unique<Bf16CompressHook>(group));
  } else if (options.comm_hook != "none") {
    throw ConfigError("--ddp-comm-hook must be none, fp16 or bf16, got '" +
                      options.comm_hook + "'");
  }
}

DataParallel::~DataParallel() = default;

void DataParallel::before_forward(bool sync) {
  if (sync) {
    reducer_->prepare_for_forward();
  }
  reducer_->rebuild_buckets();
  sync_buffers();
}

void DataParallel::after_forward(bool sync) {
  if (sync) {
    // No unused parameters in MobileNetV2: DDP passes no outputs then.
    reducer_->prepare_for_backward({});
  }
}

void DataParallel::sync_buffers() {
  if (!buffers_.empty()) {
    distributed_.broadcast_from_rank0(buffers_);
  }
}

}  // namespace mnv2
