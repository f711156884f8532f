// The int8 engine (OneDnnMobileNetV2 on a QuantizedNetwork) against the
// quantized network's own LibTorch simulation; tests/oracle's integer
// simulation in Python is the independent reference (check_int8.py).
#include "test_support.h"

#include <mobilenetv2/folded_network.h>
#include <mobilenetv2/onednn_mobilenet_v2.h>
#include <mobilenetv2/quantize.h>

#include <catch2/catch.hpp>

namespace {

mnv2::QuantizedNetwork quantized_model(const mnv2::MobileNetV2Options& options) {
  torch::manual_seed(5);
  mnv2::MobileNetV2 model(options);
  mnv2::test::randomise_batchnorm(model);
  model->eval();
  std::vector<torch::Tensor> batches = {torch::randn({8, 3, 64, 64}),
                                        torch::randn({8, 3, 64, 64})};
  mnv2::QuantizeOptions q;
  q.input_max_abs = 4;
  return mnv2::quantize_network(mnv2::fold_batchnorm(model), batches, q);
}

}  // namespace

TEST_CASE("int8 engine computes the simulated quantized network", "[int8]") {
  const auto net = quantized_model(
      mnv2::MobileNetV2Options().num_classes(10).width_mult(0.5));
  const mnv2::OneDnnMobileNetV2 engine(net);
  torch::manual_seed(7);
  const auto images = torch::randn({4, 3, 64, 64});
  const auto expected = mnv2::simulate_quantized(net, images);
  const auto actual = engine.forward(images);
  const double diff = (actual - expected).abs().max().item<double>();
  WARN("max diff " << diff << " of " << expected.abs().max().item<double>());
  CHECK(diff < 1e-2 * expected.abs().max().item<double>());
}


