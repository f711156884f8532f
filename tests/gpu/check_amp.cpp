// Row 2: automatic mixed precision through the trainer's own step
// (train_micro_batch): loss scaling's skip-and-back-off rule, and a synthetic
// task that must be learnt under fp16 (with the EMA) and bf16.
#include "checks.h"

#include <mobilenetv2/util/memory_format.h>
#include "train/step/ema.h"
#include "train/step/grad_scaler.h"
#include "train/step/optimizer.h"
#include "train/step/train_step.h"

#include <mobilenetv2/nn/mobilenet_v2.h>

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace mnv2::gpu_check {

namespace {

constexpr int64_t kTaskClasses = 4;

struct Setup {
  MobileNetV2 model{nullptr};
  std::unique_ptr<Optimizer> optimizer;
  std::unique_ptr<GradScaler> scaler;
  TrainStepSettings settings;
};

Setup make_setup(const torch::Device& device,
                 c10::ScalarType amp_dtype,
                 bool scaling,
                 GradScaler::Options scale_options = {}) {
  Setup s;
  torch::manual_seed(21);
  s.model = MobileNetV2(
      MobileNetV2Options().num_classes(kTaskClasses).width_mult(0.35));
  s.model->to(device);
  use_channels_last(*s.model);
  s.model->train();
  s.optimizer = std::make_unique<Optimizer>(
      weight_decay_groups(*s.model, 4e-5, 0), OptimizerOptions{});
  s.scaler = std::make_unique<GradScaler>(device, scaling, scale_options);
  s.settings.device = device;
  s.settings.amp_dtype = amp_dtype;
  s.settings.num_classes = kTaskClasses;
  return s;
}

/// A task any classifier can learn: each class is a fixed random image, seen
/// through noise of half its amplitude.
class SeparableTask {
 public:
  SeparableTask(int64_t size, const torch::Device& device) : device_(device) {
    auto g = at::make_generator<at::CPUGeneratorImpl>(77);
    templates_ = torch::randn({kTaskClasses, 3, size, size}, g);
    generator_ = at::make_generator<at::CPUGeneratorImpl>(78);
  }

  std::pair<torch::Tensor, torch::Tensor> batch(int64_t n) {
    auto labels =
        torch::randint(0, kTaskClasses, {n}, generator_, torch::kLong);
    const auto noise = torch::randn(
        {n, 3, templates_.size(2), templates_.size(3)}, generator_);
    const auto images = templates_.index_select(0, labels) + 0.5 * noise;
    return {images.to(device_).contiguous(torch::MemoryFormat::ChannelsLast),
            labels.to(device_)};
  }

 private:
  torch::Device device_;
  torch::Tensor templates_;
  at::Generator generator_;
};

std::vector<torch::Tensor> snapshot(const std::vector<torch::Tensor>& tensors) {
  std::vector<torch::Tensor> copies;
  for (const auto& t : tensors) {
    copies.push_back(t.detach().clone());
  }
  return copies;
}

bool all_equal(const std::vector<torch::Tensor>& a,
               const std::vector<torch::Tensor>& b) {
  for (size_t i = 0; i < a.size(); ++i) {
    if (!torch::equal(a[i], b[i])) {
      return false;
    }
  }
  return true;
}

std::vector<torch::Tensor> optimizer_state(const Optimizer& optimizer) {
  std::vector<torch::Tensor> tensors;
  for (const auto& item : optimizer.state()) {
    tensors.push_back(item.value().detach().clone());
  }
  return tensors;
}

// One fp16 step whose gradients `poison` turns into inf or NaN (a hook on the
// first convolution's weight gradient, as an overflow would): PyTorch's
// GradScaler skips the step (parameters and optimiser state unchanged) and
// halves the scale. A clean step afterwards must update again.
void check_poisoned_step(const CheckOptions& options,
                         Table& table,
                         const std::string& name,
                         float poison) {
  try {
    // A small initial scale: the clean steps must not overflow (at 2^16 the
    // first steps of a fresh model do, and are skipped, as in PyTorch).
    GradScaler::Options scaling;
    scaling.init_scale = 256;
    auto s = make_setup(options.device, torch::kHalf, true, scaling);
    SeparableTask task(32, options.device);
    TrainStepParts parts{s.model, s.optimizer.get(), s.scaler.get()};
    MicroBatch where;
    where.lr = 0.05;
    // One clean step first, so that the optimiser has state to keep.
    auto [x0, y0] = task.batch(8);
    train_micro_batch(parts, s.settings, x0, y0, where);
    ++where.global_step;
    const double scale_before = s.scaler->scale_tensor().item<double>();
    const auto params = s.optimizer->parameters();
    const auto params_before = snapshot(params);
    const auto state_before = optimizer_state(*s.optimizer);
    auto first = s.model->parameters().front();
    const auto hook = first.register_hook(
        [poison](const torch::Tensor& grad) { return grad + poison; });
    auto [x1, y1] = task.batch(8);
    train_micro_batch(parts, s.settings, x1, y1, where);
    first.remove_hook(hook);
    const double scale_after = s.scaler->scale_tensor().item<double>();
    const bool kept = all_equal(snapshot(params), params_before) &&
                      all_equal(optimizer_state(*s.optimizer), state_before);
    ++where.global_step;
    auto [x2, y2] = task.batch(8);
    train_micro_batch(parts, s.settings, x2, y2, where);
    const bool clean_updates = !all_equal(snapshot(params), params_before);
    const double scale_clean = s.scaler->scale_tensor().item<double>();
    table.add(
        name,
        kept && scale_after == scale_before / 2 && clean_updates &&
            scale_clean == scale_after,
        "step skipped: " + std::string(kept ? "yes" : "no") + ", scale " +
            sig(scale_before, 6) + " -> " + sig(scale_after, 6) +
            ", next clean step applied: " + (clean_updates ? "yes" : "no") +
            " (scale " + sig(scale_clean, 6) + ")");
  } catch (const std::exception& e) {
    table.error(name, e.what());
  }
}

// Trains the separable task under autocast; passes when the mean loss of the
// last 10 steps is under 40% of the first 10's and every loss is finite.
// With `ema`, the EMA's last update is also checked against its formula,
// computed in fp64 on the CPU.
void check_learning(const CheckOptions& options,
                    Table& table,
                    const std::string& name,
                    c10::ScalarType amp_dtype,
                    bool with_ema) {
  try {
    const int64_t steps = options.short_mode ? 30 : 100;
    const int64_t size = options.short_mode ? 64 : 96;
    const int64_t batch = options.short_mode ? 16 : 64;
    auto s = make_setup(options.device, amp_dtype, amp_dtype == torch::kHalf);
    std::optional<ModelEma> ema;
    if (with_ema) {
      ema.emplace(s.model, 0.9999, 1, batch, steps);
    }
    TrainStepParts parts{
        s.model, s.optimizer.get(), s.scaler.get(), ema ? &*ema : nullptr};
    SeparableTask task(size, options.device);
    std::vector<double> losses;
    double ema_error = 0;
    for (int64_t step = 0; step < steps; ++step) {
      auto [x, y] = task.batch(batch);
      MicroBatch where;
      where.global_step = step;
      where.lr = 0.02;
      const bool last = step + 1 == steps;
      std::vector<torch::Tensor> ema_before;
      if (last && ema) {
        ema_before = snapshot(ema->model()->parameters());
      }
      losses.push_back(
          train_micro_batch(parts, s.settings, x, y, where).item<double>());
      if (last && ema) {
        const double decay = ema->effective_decay();
        const auto now = s.model->parameters();
        const auto averaged = ema->model()->parameters();
        for (size_t i = 0; i < now.size(); ++i) {
          const auto expected =
              ema_before[i].to(torch::kCPU, torch::kDouble) * decay +
              now[i].detach().to(torch::kCPU, torch::kDouble) * (1 - decay);
          ema_error =
              std::max(ema_error, relative_error(averaged[i], expected));
        }
      }
    }
    const auto mean = [&](size_t from) {
      return std::accumulate(
                 losses.begin() + from, losses.begin() + from + 10, 0.0) /
             10.0;
    };
    const double first = mean(0);
    const double last = mean(losses.size() - 10);
    const bool finite = std::all_of(losses.begin(), losses.end(), [](double l) {
      return std::isfinite(l);
    });
    bool passed = finite && last < 0.4 * first;
    std::string figures =
        "loss " + sig(first) + " -> " + sig(last) + " over " +
        std::to_string(steps) + " steps (must fall below 40%), batch " +
        std::to_string(batch) + " at " + std::to_string(size) + " px";
    if (with_ema) {
      passed = passed && ema_error <= 1e-5;
      figures += ", EMA update vs fp64 formula " + sig(ema_error) +
                 " (rel, tolerance 1e-5)";
    }
    if (amp_dtype == torch::kHalf) {
      figures +=
          ", final scale " + sig(s.scaler->scale_tensor().item<double>(), 6);
    }
    table.add(name, passed, figures);
  } catch (const std::exception& e) {
    table.error(name, e.what());
  }
}

}  // namespace

void check_amp(const CheckOptions& options, Table& table) {
  check_poisoned_step(options,
                      table,
                      "amp_fp16_skip_on_inf",
                      std::numeric_limits<float>::infinity());
  check_poisoned_step(options,
                      table,
                      "amp_fp16_skip_on_nan",
                      std::numeric_limits<float>::quiet_NaN());
  check_learning(
      options, table, "amp_fp16_learns_with_ema", torch::kHalf, true);
  check_learning(options, table, "amp_bf16_learns", torch::kBFloat16, false);
}

}  // namespace mnv2::gpu_check
