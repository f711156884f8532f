// training_conv2d hands our kernels only the convolutions they compute:
// anything else (dilation, a non-square kernel or stride, "same" padding, a
// bias) must give exactly what LibTorch's Conv2d gives.
#include "test_support.h"

#include <mobilenetv2/nn/conv_bn_activation.h>
#include <mobilenetv2/nn/fused_batchnorm.h>
#include <mobilenetv2/util/autocast_guard.h>

#include <catch2/catch.hpp>

TEST_CASE("training_conv2d leaves other convolutions to LibTorch",
          "[model][fused]") {
  using torch::nn::Conv2dOptions;
  const mnv2::test::FastPathSwitch fast(true);
  // Channels-last fp32 maps small enough that a 3x3 depthwise layer read
  // as undilated, square and zero-padded would go to our kernels, as would
  // any 1x1 read as stride 1.
  const auto input = [](int64_t channels, int64_t size) {
    torch::manual_seed(channels * 100 + size);
    return torch::randn({2, channels, size, size})
        .contiguous(torch::MemoryFormat::ChannelsLast)
        .requires_grad_(true);
  };
  struct Case {
    const char* name;
    Conv2dOptions options;
    int64_t size;
  };
  const std::vector<Case> cases = {
      {"dilated depthwise",
       Conv2dOptions(16, 16, 3)
           .groups(16)
           .padding(1)
           .stride(2)
           .dilation(2)
           .bias(false),
       4},
      {"1x3 depthwise",
       Conv2dOptions(16, 16, {1, 3}).groups(16).padding({0, 1}).bias(false),
       2},
      {"stride (1, 2) depthwise",
       Conv2dOptions(16, 16, 3).groups(16).padding(1).stride({1, 2}).bias(
           false),
       2},
      {"same-padded depthwise",
       Conv2dOptions(16, 16, 3).groups(16).padding(torch::kSame).bias(false),
       2},
      {"1x1 with bias", Conv2dOptions(16, 24, 1).bias(true), 2},
      {"1x1 at stride (1, 2)",
       Conv2dOptions(16, 24, 1).stride({1, 2}).bias(false),
       2},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    torch::nn::Conv2d conv(c.options);
    const auto x = input(16, c.size);
    const auto xr = x.detach().clone().requires_grad_(true);
    const auto actual = mnv2::training_conv2d(*conv, x);
    const auto expected = conv->forward(xr);
    REQUIRE(actual.sizes() == expected.sizes());
    CHECK(torch::equal(actual, expected));
    const auto upstream = torch::randn_like(expected);
    const auto grads = torch::autograd::grad({actual}, {x}, {upstream});
    const auto expected_grads =
        torch::autograd::grad({expected}, {xr}, {upstream});
    CHECK(torch::equal(grads[0], expected_grads[0]));
  }
}

TEST_CASE(
    "the training kernels' weight gradients have their parameters' strides",
    "[model][fused]") {
  // use_channels_last gives 1x1 and depthwise weights channels-last strides
  // that differ from contiguous ones only in size-1 dimensions. DDP's
  // Reducer lays its buckets out by the parameters' strides and warns about
  // (and copies) every gradient that differs, as LibTorch's own convolution
  // gradients do not. fp32 and bf16, with the fast kernels and without.
  for (const bool fast : {true, false}) {
    for (const bool bf16 : {false, true}) {
      CAPTURE(fast, bf16);
      mnv2::test::FastPathSwitch on(fast);
      auto [model, x, y] = mnv2::test::small_training_step(4);
      {
        mnv2::AutocastGuard autocast(torch::kCPU, torch::kBFloat16, bf16);
        torch::nn::functional::cross_entropy(model->forward(x), y).backward();
      }
      // Every convolution weight is in channels-last strides, which differ
      // from a fresh contiguous tensor's (p.contiguous() would be p itself
      // where they differ only in size-1 dimensions).
      int64_t weights = 0, squeezed = 0;
      for (const auto& item : model->named_parameters()) {
        const auto& p = item.value();
        CAPTURE(item.key(), p.sizes(), p.strides(), p.grad().strides());
        CHECK(p.grad().strides() == p.strides());
        weights += p.dim() == 4 ? 1 : 0;
        squeezed += p.strides() != torch::empty(p.sizes()).strides() ? 1 : 0;
      }
      CHECK(weights > 0);
      CHECK(squeezed == weights);  // the case that matters is there
    }
  }
}
