#include "train/step/mixup.h"

#include <torch/torch.h>

#include <cmath>

namespace mnv2 {

namespace {
double sample_beta(double alpha, std::mt19937_64& rng) {
  std::gamma_distribution<double> gamma(alpha, 1.0);
  const double a = gamma(rng);
  const double b = gamma(rng);
  return a + b > 0 ? a / (a + b) : 0.5;
}
}  // namespace

MixedBatch mix_batch(const torch::Tensor& images,
                     const torch::Tensor& labels,
                     int64_t num_classes,
                     double mixup_alpha,
                     double cutmix_alpha,
                     std::mt19937_64& rng) {
  auto targets =
      torch::one_hot(labels, num_classes).to(images.device(), torch::kFloat);
  const bool mixup = mixup_alpha > 0;
  const bool cutmix = cutmix_alpha > 0;
  if ((!mixup && !cutmix) || images.size(0) < 2) {
    return {images, targets};
  }
  const bool use_cutmix =
      cutmix && (!mixup || std::uniform_real_distribution<>(0, 1)(rng) < 0.5);
  double lambda = sample_beta(use_cutmix ? cutmix_alpha : mixup_alpha, rng);
  const auto rolled_images = images.roll(1, 0);
  const auto rolled_targets = targets.roll(1, 0);
  torch::Tensor mixed;
  if (use_cutmix) {
    const int64_t h = images.size(2);
    const int64_t w = images.size(3);
    std::uniform_int_distribution<int64_t> row(0, h - 1);
    std::uniform_int_distribution<int64_t> col(0, w - 1);
    const int64_t cy = row(rng);
    const int64_t cx = col(rng);
    const double r = std::sqrt(1.0 - lambda);
    const auto half_h = static_cast<int64_t>(r * static_cast<double>(h) / 2);
    const auto half_w = static_cast<int64_t>(r * static_cast<double>(w) / 2);
    const int64_t y1 = std::max<int64_t>(cy - half_h, 0);
    const int64_t y2 = std::min<int64_t>(cy + half_h, h);
    const int64_t x1 = std::max<int64_t>(cx - half_w, 0);
    const int64_t x2 = std::min<int64_t>(cx + half_w, w);
    mixed = images.clone();
    using torch::indexing::Slice;
    mixed.index_put_(
        {Slice(), Slice(), Slice(y1, y2), Slice(x1, x2)},
        rolled_images.index({Slice(), Slice(), Slice(y1, y2), Slice(x1, x2)}));
    lambda = 1.0 - static_cast<double>((y2 - y1) * (x2 - x1)) /
                       static_cast<double>(h * w);
  } else {
    mixed = images * lambda + rolled_images * (1.0 - lambda);
  }
  return {mixed, targets * lambda + rolled_targets * (1.0 - lambda)};
}

torch::Tensor soft_cross_entropy(const torch::Tensor& logits,
                                 const torch::Tensor& targets,
                                 double label_smoothing) {
  auto t = targets;
  if (label_smoothing > 0) {
    t = t * (1.0 - label_smoothing) +
        label_smoothing / static_cast<double>(targets.size(1));
  }
  return -(t * torch::log_softmax(logits.to(torch::kFloat), 1)).sum(1).mean();
}

}  // namespace mnv2
