// What a training run does across the ranks of a distributed run (each
// helper is a no-op or a local computation in one process).
#include "common/stop_signal.h"
#include "train/run/distributed_eval.h"
#include "train/run/training.h"

#include <torch/torch.h>

namespace mnv2 {

void Training::sum_across_ranks(std::vector<torch::Tensor>& tensors) {
  if (distributed_) {
    distributed_->all_reduce(tensors);
  }
}

int Training::agreed_stop_signal() {
  if (!distributed_) {
    return stop_signal();
  }
  // The largest signal number any rank saw: SIGTERM (15) over SIGINT (2).
  std::vector<torch::Tensor> flag = {
      torch::full({1}, stop_signal(), torch::TensorOptions().dtype(torch::kInt))
          .to(device_)};
  distributed_->all_reduce(flag, c10d::ReduceOp::MAX);
  return flag[0].item<int>();
}

double Training::mean_loss(const torch::Tensor& loss_sum, int64_t batches) {
  // Every rank's batches: all ranks log, and stop on, the same figure.
  std::vector<torch::Tensor> sum = {loss_sum.to(torch::kDouble).reshape({1})};
  sum_across_ranks(sum);
  return sum[0].item<double>() / static_cast<double>(batches * world_size());
}

EvalResult Training::evaluate_everywhere(MobileNetV2& model) {
  EvalOptions options;
  options.device = device_;
  options.channels_last = c_.channels_last;
  options.normalization = info_.normalization;
  options.amp_dtype = amp_dtype_;
  model->eval();
  if (distributed_) {
    // Rank 0's BatchNorm statistics everywhere: one model is evaluated.
    std::vector<torch::Tensor> buffers = model->buffers();
    distributed_->broadcast_from_rank0(buffers);
  }
  const auto classes = static_cast<int64_t>(info_.class_names.size());
  std::function<torch::Tensor(const torch::Tensor&)> forward =
      [&](const torch::Tensor& x) { return model->forward(x); };
  std::optional<QuantizedNetwork> int8;
  if (qat_ && qat_ranges_measured(*qat_)) {
    if (distributed_) {
      // Rank 0's ranges too: the ranks' moving averages saw other batches.
      std::vector<torch::Tensor> ranges = {qat_->ranges.to(device_)};
      distributed_->broadcast_from_rank0(ranges);
      qat_->ranges = ranges[0].cpu();
    }
    // What the int8 file will compute, once per evaluation.
    int8 = qat_quantized_network(model, *qat_);
    forward = [&](const torch::Tensor& x) {
      return simulate_quantized(*int8, x.cpu()).to(x.device());
    };
  }
  return evaluate_across_ranks(
      forward, *val_loader_, classes, options, distributed_.get());
}

}  // namespace mnv2
