// Reading quantized weights files: every malformed entry is refused with an
// error naming it; a good file reads back to what was written.
#include "test_support.h"

#include <mobilenetv2/engines/plain_network.h>
#include <mobilenetv2/quantization/quantize.h>

#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <limits>

namespace {

mnv2::QuantizedNetwork small_quantized() {
  torch::manual_seed(3);
  mnv2::MobileNetV2 model(
      mnv2::MobileNetV2Options().num_classes(4).width_mult(0.35));
  mnv2::test::randomise_batchnorm(model);
  model->eval();
  mnv2::QuantizeOptions options;
  options.input_max_abs = 2.64;
  return mnv2::quantize_network(
      mnv2::fold_batchnorm(model), {torch::randn({4, 3, 32, 32})}, options);
}

std::string error_of(const mnv2::StateDict& state) {
  try {
    mnv2::quantized_from_state_dict(state, "q.pth");
  } catch (const mnv2::WeightsError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("quantized weights read back and bad ones are refused", "[weights]") {
  const auto net = small_quantized();
  const auto state = mnv2::quantized_to_state_dict(net);
  const auto back = mnv2::quantized_from_state_dict(state, "q.pth");
  REQUIRE(back.convs.size() == net.convs.size());
  CHECK(back.input_scale == net.input_scale);
  const auto images = torch::randn({2, 3, 32, 32});
  CHECK(torch::equal(mnv2::simulate_quantized(back, images),
                     mnv2::simulate_quantized(net, images)));
  // Codes in range: 7-bit dense, 8-bit depthwise.
  size_t n = 0;
  for (const auto& block : net.network.blocks) {
    for (const auto& conv : block.convs) {
      CHECK(net.convs[n++].codes.abs().max().item<int64_t>() <=
            mnv2::code_max(conv));
    }
  }

  using Edit = std::function<void(mnv2::StateDict&)>;
  const auto nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<std::tuple<std::string, Edit, std::string>> cases = {
      {"zero weight scale",
       [](auto& s) { s["convs.3.weight_scale"][0] = 0; },
       "'convs.3.weight_scale' holds a scale that is not positive"},
      {"negative output scale",
       [](auto& s) { s["convs.5.output_scale"][0] = -0.1; },
       "'convs.5.output_scale' holds a scale that is not positive"},
      {"NaN input scale",
       [&](auto& s) { s["quantization.input_scale"][0] = nan; },
       "'quantization.input_scale' holds a scale that is not positive"},
      {"denormal weight scale (products flush to zero)",
       [](auto& s) { s["convs.6.weight_scale"][1] = 1e-45f; },
       "'convs.6.weight_scale' holds a scale that is outside [1e-12, 1e+06]"},
      {"huge output scale (codes overflow to inf)",
       [](auto& s) { s["convs.8.output_scale"][0] = 1e38f; },
       "'convs.8.output_scale' holds a scale that is outside [1e-12, 1e+06]"},
      {"wrong count of weight scales",
       [](auto& s) {
         s["convs.2.weight_scale"] = s["convs.2.weight_scale"].narrow(0, 0, 3);
       },
       "'convs.2.weight_scale' holds 3 scales for"},
      {"8-bit codes in a dense convolution",
       [](auto& s) { s["convs.0.codes"][0][0][0][0] = 100; },
       "'convs.0.codes' holds codes outside [-63, 63]"},
      {"codes that are not int8",
       [](auto& s) {
         s["convs.1.codes"] = s["convs.1.codes"].to(torch::kFloat);
       },
       "'convs.1.codes' must be a 4-D Char tensor"},
      {"a missing bias",
       [](auto& s) { s.erase("convs.4.bias"); },
       "no 'convs.4.bias'"},
      {"a classifier of the wrong width",
       [](auto& s) {
         s["classifier.weight"] = torch::zeros({4, 7});
       },
       "the classifier"},
      {"an unknown format version",
       [](auto& s) { s["quantization.version"][0] = 9; },
       "format version"},
  };
  for (const auto& [name, edit, expected] : cases) {
    INFO(name);
    auto copy = mnv2::StateDict();
    for (const auto& item : state) {
      copy.insert(item.key(), item.value().clone());
    }
    edit(copy);
    const auto error = error_of(copy);
    CHECK_THAT(error, Catch::Contains(expected));
    CHECK_THAT(error, Catch::Contains("q.pth"));
    CHECK(error.find('\n') == std::string::npos);
  }
}

TEST_CASE("the logits' step: measured at calibration, optional on reading",
          "[weights]") {
  const auto net = small_quantized();
  // The calibration's logits, recomputed: the step is 1.25 x max |logit|
  // / 127 over the calibration images.
  torch::manual_seed(3);
  mnv2::MobileNetV2 model(
      mnv2::MobileNetV2Options().num_classes(4).width_mult(0.35));
  mnv2::test::randomise_batchnorm(model);
  model->eval();
  const auto images = torch::randn({4, 3, 32, 32});
  torch::NoGradGuard no_grad;
  const double max_logit = model->forward(images).abs().max().item<double>();
  CHECK(net.logits_scale == Approx(1.25 * max_logit / 127).epsilon(1e-4));
  auto state = mnv2::quantized_to_state_dict(net);
  CHECK(mnv2::quantized_from_state_dict(state, "q.pth").logits_scale ==
        Approx(net.logits_scale));
  // Files written before the step was stored read with 0 (not measured).
  state.erase("quantization.logits_scale");
  CHECK(mnv2::quantized_from_state_dict(state, "q.pth").logits_scale == 0);
}

TEST_CASE("integer runtimes' form: biases as int32 codes that fit",
          "[weights]") {
  mnv2::plain::Conv conv;
  conv.weight_shape = {2, 1, 1, 2};
  conv.codes = {63, -63, 5, 7};
  conv.weight_scales = {1e-12f, 0.01f};
  conv.bias = {1.0f, 0.5f};
  const float input_step = 0.1f;
  const auto q = mnv2::plain::integer_conv(conv, input_step);
  // Channel 1: 0.5 / (0.1 x 0.01) = 500, codes and step kept.
  CHECK(q.bias[1] == 500);
  CHECK(q.weight_scales[1] == 0.01f);
  CHECK(q.codes[2] == 5);
  CHECK(q.codes[3] == 7);
  // Channel 0: 1 / (0.1 x 1e-12) = 1e13 overflows int32; its step grows to
  // 1 / (0.1 x 2^30), where the bias code is 2^30 (up to the fp32 step's
  // rounding) and its weights (6.3e-11) round to 0.
  CHECK(q.widened == 1);
  CHECK(q.weight_scales[0] == Approx(1.0 / (0.1 * 1073741824.0)));
  CHECK(std::abs(q.bias[0] - 1073741824.0) <= 1073741824.0 * 1e-6);
  CHECK(q.codes[0] == 0);
  CHECK(q.codes[1] == 0);
}
