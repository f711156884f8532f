// Training parts: schedules, optimisers (against torch.optim), loss scaling,
// autocast, EMA, mixup.
#include "test_support.h"

#include <mobilenetv2/util/autocast_guard.h>
#include "train/step/ema.h"
#include "train/step/grad_scaler.h"
#include "train/step/lr_schedule.h"
#include "train/step/mixup.h"
#include "train/step/optimizer.h"

#include <mobilenetv2/torch_files/state_dict.h>

#include <ATen/autocast_mode.h>
#include <catch2/catch.hpp>

#include <cmath>
#include <numbers>

namespace {

mnv2::StateDict optimizer_reference() {
  const auto dir = mnv2::test::folder_from_env("MNV2_ORACLE_DIR");
  return mnv2::read_state_dict((dir / "optimizer_reference.pth").string());
}

// Runs our optimiser over the oracle's five gradient steps.
std::map<std::string, torch::Tensor> run_steps(const mnv2::StateDict& ref,
                                               mnv2::OptimizerOptions options,
                                               double weight_decay) {
  auto w = ref["initial.w"].clone().requires_grad_(true);
  auto b = ref["initial.b"].clone().requires_grad_(true);
  mnv2::Optimizer optimizer({{{{"w", w}, {"b", b}}, weight_decay}}, options);
  const std::vector<double> lrs = {0.1, 0.08, 0.05, 0.05, 0.02};
  for (int step = 0; step < 5; ++step) {
    w.mutable_grad() = ref["grad" + std::to_string(step) + ".w"].clone();
    b.mutable_grad() = ref["grad" + std::to_string(step) + ".b"].clone();
    optimizer.step(lrs[static_cast<size_t>(step)]);
  }
  return {{"w", w.detach()}, {"b", b.detach()}};
}

}  // namespace

TEST_CASE("LR schedules: warmup then step, exponential, cosine", "[train]") {
  mnv2::LrSchedule s;
  s.base_lr = 0.5;
  s.steps_per_epoch = 10;
  s.epochs = 20;
  s.warmup_epochs = 2;
  s.warmup_decay = 0.01;
  s.kind = "cosine";
  CHECK(s.at(0) == Approx(0.005));                       // 0.5 * 0.01
  CHECK(s.at(10) == Approx(0.5 * (0.01 + 0.99 * 0.5)));  // half way up
  CHECK(s.at(20) == Approx(0.5));                        // main phase starts
  CHECK(s.at(110) == Approx(0.25));  // half of 18 epochs: cos = 0
  CHECK(s.at(200) == Approx(0.0).margin(1e-12));
  s.kind = "step";
  s.warmup_epochs = 0;
  s.step_size = 3;
  s.gamma = 0.1;
  CHECK(s.at(29) == Approx(0.5));
  CHECK(s.at(30) == Approx(0.05));
  CHECK(s.at(65) == Approx(0.005));
  s.kind = "exponential";
  s.gamma = 0.98;
  CHECK(s.at(15) == Approx(0.5 * std::pow(0.98, 1.5)));
}

TEST_CASE("SGD, Nesterov and AdamW steps equal torch.optim's", "[train]") {
  // SGD by its one-loop update and by LibTorch's operators.
  const bool fast = GENERATE(true, false);
  CAPTURE(fast);
  mnv2::test::FastPathSwitch switch_(fast);
  const auto ref = optimizer_reference();
  mnv2::OptimizerOptions sgd;
  sgd.kind = "sgd";
  sgd.momentum = 0.9;
  auto ours = run_steps(ref, sgd, 0.01);
  CHECK(torch::allclose(ours["w"], ref["sgd.w"], 1e-5, 1e-6));
  CHECK(torch::allclose(ours["b"], ref["sgd.b"], 1e-5, 1e-6));
  sgd.nesterov = true;
  ours = run_steps(ref, sgd, 0.01);
  CHECK(torch::allclose(ours["w"], ref["sgd_nesterov.w"], 1e-5, 1e-6));
  mnv2::OptimizerOptions adamw;
  adamw.kind = "adamw";
  adamw.eps = 1e-8;
  ours = run_steps(ref, adamw, 0.05);
  CHECK(torch::allclose(ours["w"], ref["adamw.w"], 1e-5, 1e-6));
  CHECK(torch::allclose(ours["b"], ref["adamw.b"], 1e-5, 1e-6));
}

TEST_CASE("gradient clipping scales to the global norm, computed by hand",
          "[train]") {
  // Gradients (3, 4) and (12): global L2 norm 13. The one-loop form (fp32
  // contiguous on the CPU) and LibTorch's operators (fp64 gradients).
  const bool fast = GENERATE(true, false);
  CAPTURE(fast);
  const auto dtype = fast ? torch::kFloat : torch::kDouble;
  const auto make = [&](std::vector<double> grad) {
    auto p = torch::zeros({static_cast<int64_t>(grad.size())}, dtype)
                 .requires_grad_(true);
    p.mutable_grad() = torch::tensor(grad, dtype);
    return p;
  };
  const auto a = make({3.0, 4.0});
  const auto b = make({12.0});
  const auto no_grad = make({});
  no_grad.mutable_grad() = torch::Tensor();     // skipped, as a frozen layer
  mnv2::clip_grad_norm({a, b, no_grad}, 20.0);  // under the limit: unchanged
  CHECK(a.grad()[1].item<double>() == 4.0);
  CHECK(b.grad()[0].item<double>() == 12.0);
  mnv2::clip_grad_norm({a, b, no_grad}, 6.5);  // x 6.5 / (13 + 1e-6)
  const double coef = 6.5 / (13.0 + 1e-6);
  CHECK(a.grad()[0].item<double>() == Approx(3.0 * coef).epsilon(1e-7));
  CHECK(a.grad()[1].item<double>() == Approx(4.0 * coef).epsilon(1e-7));
  CHECK(b.grad()[0].item<double>() == Approx(12.0 * coef).epsilon(1e-7));
  CHECK(a.grad().scalar_type() == dtype);
}

TEST_CASE("RMSProp in TensorFlow's form, computed by hand", "[train]") {
  auto p = torch::tensor({1.0, -2.0}).requires_grad_(true);
  mnv2::OptimizerOptions options;
  options.kind = "rmsprop";
  options.momentum = 0.9;
  options.eps = 1e-3;
  mnv2::Optimizer optimizer({{{{"p", p}}, 0.0}}, options);
  p.mutable_grad() = torch::tensor({0.5, 2.0});
  optimizer.step(0.1);
  // ms = 0.9 * 1 + 0.1 * g^2 (TF starts the mean square at 1);
  // mom = lr * g / sqrt(ms + eps); p -= mom.
  const double ms0 = 0.9 + 0.1 * 0.25;
  const double ms1 = 0.9 + 0.1 * 4.0;
  CHECK(p[0].item<double>() == Approx(1.0 - 0.1 * 0.5 / std::sqrt(ms0 + 1e-3)));
  CHECK(p[1].item<double>() ==
        Approx(-2.0 - 0.1 * 2.0 / std::sqrt(ms1 + 1e-3)));
  const double mom0 = 0.1 * 0.5 / std::sqrt(ms0 + 1e-3);
  const double before = p[0].item<double>();
  optimizer.step(0.1);  // same gradient again
  const double ms0b = 0.9 * ms0 + 0.1 * 0.25;
  CHECK(p[0].item<double>() ==
        Approx(before - (0.9 * mom0 + 0.1 * 0.5 / std::sqrt(ms0b + 1e-3))));
}

TEST_CASE("no weight decay for BN and bias parameters", "[train]") {
  mnv2::MobileNetV2 model(mnv2::MobileNetV2Options().num_classes(3));
  const auto groups = mnv2::weight_decay_groups(*model, 4e-5, 0.0);
  REQUIRE(groups.size() == 2);
  CHECK(groups[0].weight_decay == 4e-5);
  CHECK(groups[1].weight_decay == 0.0);
  for (const auto& [name, p] : groups[1].params) {
    CHECK(p.dim() == 1);
  }
  CHECK(groups[0].params.size() == 52 + 1);  // 52 conv weights + fc weight
}

TEST_CASE("GradScaler skips a step with inf/NaN gradients and backs off",
          "[train][amp]") {
  auto p = torch::ones({3}).requires_grad_(true);
  mnv2::OptimizerOptions sgd;
  sgd.kind = "sgd";
  sgd.momentum = 0.9;
  mnv2::Optimizer optimizer({{{{"p", p}}, 0.0}}, sgd);
  mnv2::GradScaler scaler(torch::kCPU, true, {1024.0, 2.0, 0.5, 2});
  CHECK(scaler.scale(torch::tensor(1.0)).item<double>() == 1024.0);

  for (const double bad : {std::numeric_limits<double>::infinity(),
                           std::numeric_limits<double>::quiet_NaN()}) {
    const auto before = p.detach().clone();
    p.mutable_grad() = torch::tensor({1.0, bad, 1.0}, torch::kFloat);
    scaler.unscale({p});
    optimizer.step(0.1, scaler.skip_step());
    scaler.update();
    CHECK(torch::equal(p.detach(), before));  // step skipped
    CHECK(optimizer.state()["step"].item<double>() == 0);
  }
  CHECK(scaler.scale_tensor().item<double>() == 256.0);  // 1024 * 0.5 * 0.5

  // Clean steps: gradients unscaled, applied; the scale grows after 2.
  for (int i = 0; i < 2; ++i) {
    p.mutable_grad() = torch::full({3}, 256.0);
    scaler.unscale({p});
    CHECK(torch::allclose(p.grad(), torch::ones({3})));
    optimizer.step(0.1, scaler.skip_step());
    scaler.update();
  }
  CHECK(scaler.scale_tensor().item<double>() == 512.0);
  CHECK(optimizer.state()["step"].item<double>() == 2);
  CHECK(p[0].item<double>() == Approx(1.0 - 0.1 - 0.1 * 1.9));
}

TEST_CASE("bf16 autocast on CPU runs convolutions in bf16",
          "[train][amp][bf16]") {
  mnv2::MobileNetV2 model(mnv2::MobileNetV2Options().num_classes(4));
  model->eval();
  torch::NoGradGuard no_grad;
  const auto x = torch::randn({2, 3, 64, 64});
  torch::Tensor logits;
  {
    mnv2::AutocastGuard autocast(torch::kCPU, torch::kBFloat16, true);
    logits = model->forward(x);
    CHECK(logits.scalar_type() == torch::kBFloat16);
  }
  CHECK_FALSE(at::autocast::is_autocast_enabled(torch::kCPU));
  const auto fp32 = model->forward(x);
  CHECK(fp32.scalar_type() == torch::kFloat);
  CHECK(mnv2::test::relative_error(logits.to(torch::kFloat), fp32) < 0.1);
}

TEST_CASE("EMA follows torchvision's adjusted decay", "[train]") {
  mnv2::MobileNetV2 model(
      mnv2::MobileNetV2Options().num_classes(2).width_mult(0.35));
  // torchvision: alpha = min(1, (1 - 0.99998) * 128 * 32 / 600).
  mnv2::ModelEma ema(model, 0.99998, 32, 128, 600);
  CHECK(ema.effective_decay() == Approx(1 - 2e-5 * 128 * 32 / 600.0));
  torch::NoGradGuard no_grad;
  const auto before =
      mnv2::state_dict_of(*ema.model())["classifier.1.bias"].clone();
  for (auto& p : model->parameters()) {
    p.add_(1.0);
  }
  ema.after_step(31, false);  // not an update step
  CHECK(torch::equal(mnv2::state_dict_of(*ema.model())["classifier.1.bias"],
                     before));
  ema.after_step(32, false);
  const double alpha = 1 - ema.effective_decay();
  CHECK(torch::allclose(mnv2::state_dict_of(*ema.model())["classifier.1.bias"],
                        before + alpha,
                        1e-5,
                        1e-7));
  ema.after_step(64, true);  // warmup: copy
  CHECK(torch::equal(mnv2::state_dict_of(*ema.model())["classifier.1.bias"],
                     mnv2::state_dict_of(*model)["classifier.1.bias"]));
}

TEST_CASE("mixup and cutmix give probability targets", "[train]") {
  const auto images = torch::randn({6, 3, 16, 16});
  const auto labels = torch::tensor({0, 1, 2, 3, 4, 0}, torch::kLong);
  std::mt19937_64 rng(4);
  for (int i = 0; i < 20; ++i) {
    const auto mixed = mnv2::mix_batch(images, labels, 5, 0.2, 1.0, rng);
    CHECK(mixed.images.sizes() == images.sizes());
    CHECK(torch::allclose(mixed.targets.sum(1), torch::ones({6})));
    CHECK(mixed.targets.min().item<double>() >= 0);
  }
  // With label smoothing, one-hot targets give torch's smoothed loss.
  const auto logits = torch::randn({6, 5});
  const auto soft = mnv2::soft_cross_entropy(
      logits, torch::one_hot(labels, 5).to(torch::kFloat), 0.1);
  const auto hard = torch::nn::functional::cross_entropy(
      logits,
      labels,
      torch::nn::functional::CrossEntropyFuncOptions().label_smoothing(0.1));
  CHECK(soft.item<double>() == Approx(hard.item<double>()));
}
