#include "train/step/train_step.h"

#include <mobilenetv2/util/autocast_guard.h>
#include "train/step/mixup.h"

#include <torch/torch.h>

#include <random>

namespace mnv2 {

torch::Tensor train_micro_batch(TrainStepParts& parts,
                                const TrainStepSettings& settings,
                                const torch::Tensor& images,
                                const torch::Tensor& labels,
                                const MicroBatch& where) {
  auto& model = parts.model;
  const auto forward = [&](const torch::Tensor& x) {
    return parts.forward ? parts.forward(x) : model->forward(x);
  };
  if (parts.data_parallel) {
    parts.data_parallel->before_forward(where.last);
  }
  torch::Tensor loss;
  {
    AutocastGuard autocast(settings.device.type(),
                           settings.amp_dtype.value_or(torch::kFloat),
                           settings.amp_dtype.has_value());
    if (settings.mixup_alpha > 0 || settings.cutmix_alpha > 0) {
      std::seed_seq seeds{static_cast<uint32_t>(settings.seed),
                          static_cast<uint32_t>(where.global_step)};
      std::mt19937_64 rng(seeds);
      const auto mixed = mix_batch(images,
                                   labels,
                                   settings.num_classes,
                                   settings.mixup_alpha,
                                   settings.cutmix_alpha,
                                   rng);
      loss = soft_cross_entropy(
          forward(mixed.images), mixed.targets, settings.label_smoothing);
    } else {
      loss = torch::nn::functional::cross_entropy(
          forward(images).to(torch::kFloat),
          labels,
          torch::nn::functional::CrossEntropyFuncOptions().label_smoothing(
              settings.label_smoothing));
    }
  }
  if (parts.data_parallel) {
    parts.data_parallel->after_forward(where.last);
  }
  if (where.index == 0) {
    parts.optimizer->zero_grad();
  }
  const auto accumulate = settings.accumulate_steps;
  parts.scaler
      ->scale(accumulate > 1 ? loss / static_cast<double>(accumulate) : loss)
      .backward();
  if (where.last) {
    // Gradients are averaged across ranks by now: every rank sees the same
    // inf/NaN check, clipping and step.
    const auto params = parts.optimizer->parameters();
    parts.scaler->unscale(params);
    if (settings.clip_grad_norm > 0) {
      clip_grad_norm(params, settings.clip_grad_norm);
    }
    parts.optimizer->step(where.lr, parts.scaler->skip_step());
    parts.scaler->update();
    if (parts.ema) {
      parts.ema->after_step(where.global_step + 1, where.in_warmup);
    }
  }
  return loss.detach();
}

}  // namespace mnv2
