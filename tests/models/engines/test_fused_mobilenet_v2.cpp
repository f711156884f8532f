// mnv2::FusedMobileNetV2 (BatchNorm folded, frozen TorchScript with oneDNN
// Graph fusion) against the eager model, itself equal to torchvision's
// (parity tests).
#include "test_support.h"

#include <mobilenetv2/engines/fused_mobilenet_v2.h>
#include <mobilenetv2/util/cpu_features.h>

#include <ATen/autocast_mode.h>

#include <catch2/catch.hpp>

namespace {

mnv2::MobileNetV2 trained_model() {
  torch::manual_seed(21);
  mnv2::MobileNetV2 model(
      mnv2::MobileNetV2Options().num_classes(10).width_mult(0.5));
  mnv2::test::randomise_batchnorm(model);
  model->eval();
  return model;
}

class CpuAutocast {
 public:
  explicit CpuAutocast(c10::ScalarType dtype) {
    at::autocast::set_autocast_dtype(c10::DeviceType::CPU, dtype);
    at::autocast::set_autocast_enabled(c10::DeviceType::CPU, true);
  }
  ~CpuAutocast() {
    at::autocast::set_autocast_enabled(c10::DeviceType::CPU, false);
    at::autocast::clear_cache();
  }
  CpuAutocast(const CpuAutocast&) = delete;
  CpuAutocast& operator=(const CpuAutocast&) = delete;
};

}  // namespace

TEST_CASE("FusedMobileNetV2 computes what the eager model does", "[model]") {
  auto model = trained_model();
  const mnv2::FusedMobileNetV2 fused(model, /*with_bf16=*/false);
  torch::NoGradGuard no_grad;
  // 16 px: a shape oneDNN Graph rejects, answered by the eager model.
  for (const auto& [batch, size] : std::vector<std::pair<int64_t, int64_t>>{
           {1, 224}, {5, 97}, {8, 64}, {7, 32}, {1, 16}}) {
    const auto images = torch::randn({batch, 3, size, size});
    const auto expected = model->forward(images);
    for (const bool channels_last : {false, true}) {
      const auto input =
          channels_last ? images.contiguous(torch::MemoryFormat::ChannelsLast)
                        : images;
      // Twice: the first calls profile and compile the fused graph.
      for (int pass = 0; pass < 2; ++pass) {
        INFO(batch << "x" << size << (channels_last ? " NHWC" : " NCHW"));
        CHECK(mnv2::test::relative_error(fused.forward(input), expected) <
              1e-4);
      }
    }
  }
  CHECK(fused.runs_fused(std::nullopt));
  CHECK_FALSE(fused.runs_fused(torch::kBFloat16));
}

TEST_CASE("FusedMobileNetV2 answers several threads at once", "[model]") {
  auto model = trained_model();
  const mnv2::FusedMobileNetV2 fused(model, false);
  torch::NoGradGuard no_grad;
  const std::vector<torch::Tensor> inputs = {torch::randn({2, 3, 64, 64}),
                                             torch::randn({3, 3, 48, 48})};
  const auto errors = mnv2::test::errors_from_threads(
      [&](const torch::Tensor& x) { return fused.forward(x); }, model, inputs);
  for (const double error : errors) {
    CHECK(error < 1e-4);
  }
}

TEST_CASE("FusedMobileNetV2 in bf16 where the CPU has it natively",
          "[model][bf16]") {
  auto model = trained_model();
  torch::NoGradGuard no_grad;
  // A trained head's spread of logits (the initial one's 0.01 std gives
  // near-uniform probabilities, ties that say nothing about top-1).
  for (const auto& p : model->classifier->parameters()) {
    p.mul_(100);
  }
  const auto images = torch::randn({8, 3, 64, 64});
  const auto expected = model->forward(images);
  const mnv2::FusedMobileNetV2 fused(model);  // bf16 copy where native
  CpuAutocast autocast(torch::kBFloat16);
  const auto eager_bf16 = model->forward(images).to(torch::kFloat);
  if (mnv2::cpu_has_native_bf16()) {
    REQUIRE(fused.runs_fused(torch::kBFloat16));
    torch::Tensor fused_bf16;
    for (int pass = 0; pass < 3; ++pass) {
      fused_bf16 = fused.forward(images);
    }
    CHECK(fused_bf16.scalar_type() == torch::kFloat);
    // As close to fp32 as eager autocast is, within a factor.
    const double fused_error = mnv2::test::relative_error(fused_bf16, expected);
    const double eager_error = mnv2::test::relative_error(eager_bf16, expected);
    INFO("bf16 vs fp32: fused " << fused_error << ", eager autocast "
                                << eager_error);
    CHECK(fused_error < 0.05);
    CHECK(fused_error < 4 * eager_error);
    // The documented top-1 claim, on the rows it covers.
    const auto top1 = mnv2::test::top1_agreement(expected, fused_bf16);
    INFO(top1.margins);
    CHECK(top1.covered >= 2);
    CHECK(top1.kept == top1.covered);
  } else {
    // Emulated bf16 would be slower than fp32: the eager model answers.
    CHECK_FALSE(fused.runs_fused(torch::kBFloat16));
    CHECK(torch::equal(fused.forward(images), eager_bf16));
  }
}

TEST_CASE("FusedMobileNetV2 refuses a model in training mode", "[model]") {
  mnv2::MobileNetV2 model(mnv2::MobileNetV2Options().num_classes(3));
  CHECK_THROWS_WITH(mnv2::FusedMobileNetV2(model),
                    Catch::Contains("eval mode"));
}
