// The fused inference engine (BatchNorm folded, frozen TorchScript with
// oneDNN Graph fusion) against the eager model, itself equal to
// torchvision's (parity tests).
#include "test_support.h"

#include "common/autocast.h"
#include "common/runtime.h"
#include "eval/inference_model.h"

#include <mobilenetv2/weights_io.h>

#include <catch2/catch.hpp>

TEST_CASE("the fused engine computes what the eager model does", "[eval]") {
  const auto dir = mnv2::test::fresh_temp_dir("fused-engine");
  torch::manual_seed(21);
  mnv2::MobileNetV2 trained(
      mnv2::MobileNetV2Options().num_classes(10).width_mult(0.5));
  {
    // Statistics as training leaves them, so that folding has work to do.
    torch::NoGradGuard no_grad;
    for (auto& module : trained->modules(false)) {
      if (auto* bn = module->as<torch::nn::BatchNorm2d>()) {
        bn->running_mean.uniform_(-0.3, 0.3);
        bn->running_var.uniform_(0.5, 1.5);
        bn->weight.uniform_(0.5, 1.5);
      }
    }
  }
  const auto path = (dir / "weights.pth").string();
  mnv2::write_state_dict(mnv2::state_dict_of(*trained), path);
  auto model = mnv2::InferenceModel::load(path, true, torch::kCPU);
  model.to_channels_last();
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> inputs;
  std::vector<torch::Tensor> expected;
  for (const auto& [batch, size] : std::vector<std::pair<int64_t, int64_t>>{
           {1, 224}, {5, 97}, {8, 64}, {7, 32}, {1, 16}}) {
    inputs.push_back(torch::randn({batch, 3, size, size})
                         .contiguous(torch::MemoryFormat::ChannelsLast));
    expected.push_back(model.forward(inputs.back()));
  }
  REQUIRE_FALSE(model.fused());
  model.use_fused_engine();
  REQUIRE(model.fused());
  for (size_t i = 0; i < inputs.size(); ++i) {
    // Twice: the first calls profile and compile the fused graph.
    for (int pass = 0; pass < 2; ++pass) {
      CHECK(mnv2::test::relative_error(model.forward(inputs[i]), expected[i]) <
            1e-4);
    }
  }
  // Under CPU autocast to bf16: a bf16 copy of the fused network where the
  // CPU has native bf16 (as close to fp32 as eager autocast is, within a
  // factor); elsewhere the eager model answers.
  auto eager = model.eager();  // a holder: shares the module
  mnv2::AutocastGuard autocast(c10::DeviceType::CPU, torch::kBFloat16, true);
  const auto eager_bf16 = eager->forward(inputs[2]);
  if (mnv2::cpu_has_native_bf16()) {
    REQUIRE(model.runs_fused(torch::kBFloat16));
    torch::Tensor fused_bf16;
    for (int pass = 0; pass < 3; ++pass) {
      fused_bf16 = model.forward(inputs[2]);
    }
    CHECK(fused_bf16.scalar_type() == torch::kFloat);
    const double fused_error =
        mnv2::test::relative_error(fused_bf16, expected[2]);
    const double eager_error =
        mnv2::test::relative_error(eager_bf16.to(torch::kFloat), expected[2]);
    INFO("bf16 vs fp32: fused " << fused_error << ", eager autocast "
                                << eager_error);
    CHECK(fused_error < 0.05);
    CHECK(fused_error < 4 * eager_error);
    CHECK(torch::equal(fused_bf16.argmax(1), expected[2].argmax(1)));
  } else {
    CHECK_FALSE(model.runs_fused(torch::kBFloat16));
    CHECK(torch::equal(model.forward(inputs[2]), eager_bf16));
  }
}
