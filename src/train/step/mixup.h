#pragma once

#include <torch/types.h>

#include <random>

namespace mnv2 {

/// Soft targets for a batch: one-hot labels, optionally mixed.
struct MixedBatch {
  torch::Tensor images;
  torch::Tensor targets;  ///< [N, classes] probabilities
};

/// torchvision's reference MixUp and CutMix at batch level: each batch is
/// mixed with its roll by one, with lambda ~ Beta(alpha, alpha); when both
/// alphas are set, one of the two is picked with equal probability.
MixedBatch mix_batch(const torch::Tensor& images,
                     const torch::Tensor& labels,
                     int64_t num_classes,
                     double mixup_alpha,
                     double cutmix_alpha,
                     std::mt19937_64& rng);

/// Cross-entropy against probabilities with label smoothing, as
/// torch.nn.CrossEntropyLoss(label_smoothing=s) on probability targets.
torch::Tensor soft_cross_entropy(const torch::Tensor& logits,
                                 const torch::Tensor& targets,
                                 double label_smoothing);

}  // namespace mnv2
