#pragma once

#include "data/data_loader.h"

#include <torch/nn/module.h>
#include <torch/types.h>

#include <functional>
#include <optional>

namespace mnv2 {

/// Accuracy figures of one pass over a dataset.
struct EvalResult {
  // Counts (what ranks add up in distributed evaluation) ...
  int64_t samples = 0;
  double loss_sum = 0;   ///< cross-entropy summed over samples
  int64_t correct1 = 0;  ///< top-1 hits
  int64_t correct5 = 0;  ///< top-k hits
  // ... and the figures `finalize` derives from them.
  double loss = 0;  ///< mean cross-entropy
  double top1 = 0;  ///< percent
  double top5 = 0;  ///< percent (top-k with k = min(5, classes))
  torch::Tensor
      confusion;  ///< int64 [classes, classes]: rows true, cols predicted

  /// loss, top1 and top5 from the counts.
  void finalize();
};

struct EvalOptions {
  torch::Device device = torch::kCPU;
  /// Autocast dtype for the forward pass; nullopt: fp32.
  std::optional<c10::ScalarType> amp_dtype;
  bool channels_last = false;
  /// Of 8-bit batches (a loader that leaves normalising to the device).
  Normalization normalization;
  /// Called after every batch with (batches done, batches in all, images
  /// seen so far).
  std::function<void(int64_t, int64_t, int64_t)> on_batch;
};

/// Runs `forward` (logits from a normalised batch) over one epoch of `loader`
/// without gradients and gathers loss, top-1/top-5 and the confusion matrix.
EvalResult evaluate(
    const std::function<torch::Tensor(const torch::Tensor&)>& forward,
    DataLoader& loader,
    int64_t num_classes,
    const EvalOptions& options);

/// Top-1 and top-k correct counts of one batch.
std::pair<int64_t, int64_t> correct_counts(const torch::Tensor& logits,
                                           const torch::Tensor& labels,
                                           int64_t k);

}  // namespace mnv2
