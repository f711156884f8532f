#include "eval/evaluate.h"

#include "data/network_input.h"

#include <mobilenetv2/util/autocast_guard.h>

#include <torch/torch.h>

namespace mnv2 {

std::pair<int64_t, int64_t> correct_counts(const torch::Tensor& logits,
                                           const torch::Tensor& labels,
                                           int64_t k) {
  k = std::min<int64_t>(k, logits.size(1));
  const auto topk = std::get<1>(logits.topk(k, 1));
  const auto hits = topk.eq(labels.view({-1, 1}));
  return {hits.select(1, 0).sum().item<int64_t>(),
          hits.any(1).sum().item<int64_t>()};
}

void EvalResult::finalize() {
  if (samples > 0) {
    const auto n = static_cast<double>(samples);
    loss = loss_sum / n;
    top1 = 100.0 * static_cast<double>(correct1) / n;
    top5 = 100.0 * static_cast<double>(correct5) / n;
  }
}

EvalResult evaluate(
    const std::function<torch::Tensor(const torch::Tensor&)>& forward,
    DataLoader& loader,
    int64_t num_classes,
    const EvalOptions& options) {
  torch::NoGradGuard no_grad;
  EvalResult result;
  result.confusion = torch::zeros({num_classes, num_classes}, torch::kLong);
  loader.start_epoch(0);
  const auto total = loader.batches_per_epoch();
  int64_t done = 0;
  while (auto batch = loader.next()) {
    const auto x = normalize_images(batch->images,
                                    options.device,
                                    options.channels_last,
                                    options.normalization);
    const auto labels = batch->labels;
    torch::Tensor logits;
    {
      AutocastGuard autocast(options.device.type(),
                             options.amp_dtype.value_or(torch::kFloat),
                             options.amp_dtype.has_value());
      logits = forward(x);
    }
    logits = logits.to(torch::kCPU, torch::kFloat);
    TORCH_CHECK(logits.size(1) == num_classes,
                "the model gives ",
                logits.size(1),
                " classes but the data has ",
                num_classes);
    // Per-sample losses summed in double: shards summed on other ranks give
    // the same total as one process, up to double rounding.
    result.loss_sum +=
        torch::nn::functional::cross_entropy(
            logits,
            labels,
            torch::nn::functional::CrossEntropyFuncOptions().reduction(
                torch::kNone))
            .to(torch::kDouble)
            .sum()
            .item<double>();
    const auto [c1, c5] = correct_counts(logits, labels, 5);
    result.correct1 += c1;
    result.correct5 += c5;
    const auto predicted = logits.argmax(1);
    result.confusion.view(-1).index_add_(
        0,
        labels * num_classes + predicted,
        torch::ones_like(labels, torch::kLong));
    result.samples += labels.size(0);
    if (options.on_batch) {
      options.on_batch(++done, total, result.samples);
    }
  }
  result.finalize();
  return result;
}

}  // namespace mnv2
