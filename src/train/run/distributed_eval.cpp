#include "train/run/distributed_eval.h"

#include <torch/torch.h>

namespace mnv2 {

EvalResult evaluate_across_ranks(
    const std::function<torch::Tensor(const torch::Tensor&)>& forward,
    DataLoader& loader,
    int64_t num_classes,
    const EvalOptions& options,
    Distributed* distributed) {
  auto result = evaluate(forward, loader, num_classes, options);
  if (distributed == nullptr) {
    return result;
  }
  // On the training device: NCCL reduces CUDA tensors only.
  const auto& device = options.device;
  std::vector<torch::Tensor> counts = {
      torch::tensor({result.samples, result.correct1, result.correct5},
                    torch::kLong)
          .to(device),
      torch::tensor({result.loss_sum}, torch::kDouble).to(device),
      result.confusion.to(device)};
  distributed->all_reduce(counts);
  for (auto& count : counts) {
    count = count.cpu();
  }
  result.samples = counts[0][0].item<int64_t>();
  result.correct1 = counts[0][1].item<int64_t>();
  result.correct5 = counts[0][2].item<int64_t>();
  result.loss_sum = counts[1][0].item<double>();
  result.confusion = counts[2];
  result.finalize();
  return result;
}

}  // namespace mnv2
