// Quantization-aware training's forward pass: its training form against
// the int8 network it stands for, its weight codes against post-training
// quantization's, its gradients, and bad use. tests/models/engines/onednn
// checks the int8 engine against its evaluation form.
#include "test_support.h"

#include <mobilenetv2/nn/folded_network.h>
#include <mobilenetv2/quantization/qat.h>

#include <catch2/catch.hpp>

namespace {

mnv2::MobileNetV2 small_model(mnv2::Padding padding = mnv2::Padding::kTorch) {
  torch::manual_seed(11);
  mnv2::MobileNetV2 model(mnv2::MobileNetV2Options()
                              .num_classes(10)
                              .width_mult(0.35)
                              .dropout(0)
                              .padding(padding));
  mnv2::test::randomise_batchnorm(model);
  return model;
}

}  // namespace

TEST_CASE("QAT's training pass computes what its int8 network computes",
          "[qat]") {
  for (const auto padding : {mnv2::Padding::kTorch, mnv2::Padding::kTfSame}) {
    INFO(mnv2::padding_name(padding));
    auto model = small_model(padding);
    auto state = mnv2::make_qat_state(model, 3.0);
    state.batchnorm_frozen = true;
    CHECK_FALSE(mnv2::qat_ranges_measured(state));
    const auto images = torch::randn({6, 3, 57, 57}).clamp(-3, 3);
    model->train();
    torch::NoGradGuard no_grad;
    mnv2::qat_forward(model, state, images);  // measures the ranges
    REQUIRE(mnv2::qat_ranges_measured(state));
    state.range_momentum = 0;  // keeps them
    const auto trained = mnv2::qat_forward(model, state, images);
    model->eval();
    const auto int8 = mnv2::qat_forward(model, state, images);
    // The int8 network, computed apart from QAT's own code path.
    const auto network = mnv2::qat_quantized_network(model, state);
    CHECK(torch::equal(int8, mnv2::simulate_quantized(network, images)));
    // fp32 convolutions of the codes against exact integer sums: an
    // activation that lands on a rounding boundary may round the other way
    // (one code), which would move the logits slightly, not the classes.
    // Measured here (AMD EPYC, natively and under ONEDNN_MAX_CPU_ISA=AVX2
    // and AVX512_CORE): no difference at all.
    CHECK(mnv2::test::relative_error(trained, int8) < 1e-3);
    CHECK(torch::equal(trained.argmax(1), int8.argmax(1)));
  }
}

TEST_CASE("QAT's int8 network: steps from the ranges", "[qat]") {
  auto model = small_model();
  auto state = mnv2::make_qat_state(model, 3.0);
  const auto images = torch::randn({4, 3, 48, 48});
  model->train();
  mnv2::qat_forward(model, state, images);
  model->eval();
  const auto qat = mnv2::qat_quantized_network(model, state);
  REQUIRE(qat.convs.size() == 52);  // 1 + 17 blocks' 2 or 3 + 1
  size_t n = 0;
  for (const auto& block : qat.network.blocks) {
    for (const auto& conv : block.convs) {
      INFO("convolution " << n);
      // Weights as every int8 file quantizes them: per output channel, the
      // largest |weight| at the largest code.
      const auto largest = qat.convs[n].codes.abs().amax({1, 2, 3});
      CHECK(largest.max().item<int64_t>() ==
            (mnv2::is_depthwise(conv) ? 127 : 63));
      // A range is the first batch's largest |value|; its step covers it
      // with u8 codes after ReLU6, s8 codes otherwise.
      const double range = state.ranges[static_cast<int64_t>(n)].item<double>();
      CHECK(qat.convs[n].output_scale ==
            static_cast<float>(range / (conv.relu6 ? 255.0 : 127.0)));
      ++n;
    }
  }
  CHECK(qat.input_scale == static_cast<float>(3.0 / 127));
}

TEST_CASE("QAT trains through the rounding", "[qat]") {
  for (const bool frozen : {false, true}) {
    INFO((frozen ? "BatchNorm frozen" : "BatchNorm on batch statistics"));
    auto model = small_model();
    auto state = mnv2::make_qat_state(model, 3.0);
    state.batchnorm_frozen = frozen;
    model->train();
    const auto& bn = *model->features->ptr(1)
                          ->as<mnv2::InvertedResidualImpl>()
                          ->conv->ptr(0)
                          ->as<mnv2::ConvBNActivationImpl>()
                          ->ptr(1)
                          ->as<torch::nn::BatchNorm2dImpl>();
    const auto mean_before = bn.running_mean.clone();
    const auto logits =
        mnv2::qat_forward(model, state, torch::randn({4, 3, 40, 40}));
    torch::nn::functional::cross_entropy(logits, torch::tensor({1, 2, 3, 4}))
        .backward();
    for (const auto& item : model->named_parameters()) {
      INFO(item.key());
      const auto& grad = item.value().grad();
      REQUIRE(grad.defined());
      CHECK(torch::isfinite(grad).all().item<bool>());
      CHECK(grad.abs().sum().item<double>() > 0);
    }
    CHECK(torch::equal(bn.running_mean, mean_before) == frozen);
  }
}

TEST_CASE("QAT refuses what it cannot do", "[qat]") {
  auto model = small_model();
  CHECK_THROWS_AS(mnv2::make_qat_state(model, 0), std::invalid_argument);
  auto state = mnv2::make_qat_state(model, 3.0);
  model->eval();
  CHECK_THROWS_AS(mnv2::qat_forward(model, state, torch::randn({1, 3, 32, 32})),
                  std::logic_error);
  CHECK_THROWS_AS(mnv2::qat_quantized_network(model, state),
                  std::invalid_argument);
  // Ranges of another network.
  mnv2::MobileNetV2 wider(mnv2::MobileNetV2Options().num_classes(10));
  auto other = mnv2::make_qat_state(wider, 3.0);
  other.ranges.fill_(1.0);
  CHECK(other.ranges.numel() == state.ranges.numel());
  // An activation that stays zero is measured (range 0, a unit step).
  auto zero = mnv2::make_qat_state(model, 3.0);
  zero.ranges.fill_(0.0);
  CHECK(mnv2::qat_ranges_measured(zero));
  CHECK(mnv2::qat_quantized_network(model, zero).convs[0].output_scale == 1.0f);
  state.ranges = torch::ones({5}, torch::kDouble);
  CHECK_THROWS_AS(mnv2::qat_quantized_network(model, state),
                  std::invalid_argument);
}
