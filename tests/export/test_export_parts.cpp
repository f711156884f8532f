// Export parts: the BatchNorm-folded network (what TorchScript and ONNX
// files hold) run by a forward pass written here from its description,
// against the eager model (itself equal to torchvision's); and what
// mnv2-export refuses before loading anything.
#include "test_support.h"

#include <mobilenetv2/nn/folded_network.h>
#include "export/export_command.h"

#include <catch2/catch.hpp>

namespace {

torch::Tensor run_folded(const mnv2::FoldedNetwork& net, torch::Tensor x) {
  for (const auto& block : net.blocks) {
    auto y = x;
    for (const auto& conv : block.convs) {
      y = torch::conv2d(y,
                        conv.weight,
                        conv.bias,
                        conv.stride,
                        conv.padding,
                        /*dilation=*/1,
                        conv.groups);
      if (conv.relu6) {
        y = y.clamp(0, 6);
      }
    }
    x = block.residual ? x + y : y;
  }
  x = x.mean({2, 3});
  return torch::linear(x, net.fc_weight, net.fc_bias);
}

}  // namespace

TEST_CASE("the folded network computes what the eager model does", "[export]") {
  for (const double width : {0.35, 1.0}) {
    torch::manual_seed(11);
    mnv2::MobileNetV2 model(
        mnv2::MobileNetV2Options().num_classes(10).width_mult(width));
    mnv2::test::randomise_batchnorm(model);
    model->eval();
    const auto folded = mnv2::fold_batchnorm(model);
    // The stem, 17 inverted residuals, the last 1x1 convolution.
    REQUIRE(folded.blocks.size() == 19);
    int residuals = 0;
    for (const auto& block : folded.blocks) {
      residuals += block.residual ? 1 : 0;
    }
    CHECK(residuals == 10);  // torchvision's: stride 1 and equal channels
    torch::NoGradGuard no_grad;
    for (const int64_t size : {64, 97}) {
      const auto x = torch::randn({2, 3, size, size});
      const auto expected = model->forward(x);
      CHECK(mnv2::test::relative_error(run_folded(folded, x), expected) < 1e-5);
    }
  }
}

TEST_CASE("mnv2-export's problems(): required flags, format, ranges",
          "[export]") {
  mnv2::ExportCommand c;
  CHECK(c.problems() == std::vector<std::string>{"--weights is required",
                                                 "--format is required",
                                                 "--output is required"});
  c.weights = "w.pth";
  c.format = "coreml";
  c.output = "m";
  CHECK(c.problems() ==
        std::vector<std::string>{"--format must be torchscript, onnx, pth, "
                                 "int8 or tflite, got 'coreml'"});
  c.format = "onnx";
  CHECK(c.problems().empty());
  // int8 needs a calibration folder unless the weights are a QAT checkpoint
  // (which only loading tells: mnv2-export says so then); the calibration
  // flags are checked.
  c.format = "int8";
  CHECK(c.problems().empty());
  c.calibration_data = "photos";
  c.calibration_method = "entropy";
  c.calibration_batch = 0;
  c.percentile = 0;
  CHECK(c.problems() ==
        std::vector<std::string>{
            "--calibration-batch must be in [1, 1024]",
            "--calibration-method must be mse, percentile or minmax, got "
            "'entropy'",
            "--percentile must be in (0, 100]"});
  c.format = "onnx";
  c.calibration_method = "mse";
  c.calibration_batch = 32;
  c.percentile = 99.99;
  CHECK(c.problems() ==
        std::vector<std::string>{"--calibration-data is for --format int8"});
  c.calibration_data.clear();
  CHECK(c.problems().empty());
  c.tolerance = -1;
  CHECK(c.problems() == std::vector<std::string>{"--tolerance must be >= 0"});
  c.tolerance = 1e-4;
  c.img_size = 8;
  CHECK(c.problems() ==
        std::vector<std::string>{
            "--img-size must be in [16, 1024] (the check's input size, a "
            "TFLite model's input size)"});
  c.img_size = 100000;
  CHECK(c.problems() ==
        std::vector<std::string>{
            "--img-size must be in [16, 1024] (the check's input size, a "
            "TFLite model's input size)"});
}
