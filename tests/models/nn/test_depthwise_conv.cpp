// The depthwise convolution with its own gradients (a strided bf16 layer's
// input gradient, a small output's, every weight gradient) against
// LibTorch's bf16 and fp32 convolutions (inside a bf16 training step:
// test_bf16_training_step.cpp).
#include "test_support.h"

#include <mobilenetv2/nn/depthwise_conv.h>
#include <mobilenetv2/util/autocast_guard.h>

#include <catch2/catch.hpp>

namespace {

using mnv2::test::relative_error;

// One bf16 step of the largest value: 7 stored bits, up to 2^-7 of it.
constexpr double kBf16Step = 1.0 / 128;

struct DepthwiseCase {
  int64_t h, w, stride, padding;
  bool channels_last;
};

// depthwise_conv2d on random values of `c`'s geometry (3x3 kernels) and its
// gradients for a random upstream gradient.
struct DepthwiseRun {
  torch::Tensor x, weight, output, upstream, grad_input, grad_weight;
};
DepthwiseRun run_depthwise(const DepthwiseCase& c,
                           int64_t images,
                           int64_t channels,
                           torch::ScalarType dtype,
                           uint64_t seed) {
  torch::manual_seed(seed);
  auto x = torch::randn({images, channels, c.h, c.w}).to(dtype);
  if (c.channels_last) {
    x = x.contiguous(torch::MemoryFormat::ChannelsLast);
  }
  const auto weight = torch::randn({channels, 1, 3, 3});
  REQUIRE(mnv2::depthwise_conv2d_applies(x, channels, 3, c.stride, c.padding));
  const auto xo = x.clone().requires_grad_(true);
  const auto wo = weight.clone().requires_grad_(true);
  const auto output = mnv2::depthwise_conv2d(xo, wo, c.stride, c.padding);
  const auto upstream = torch::randn_like(output);
  (output * upstream).sum().backward();
  return {x, weight, output, upstream, xo.grad(), wo.grad()};
}

}  // namespace

TEST_CASE("strided depthwise bf16 equals LibTorch's convolution",
          "[model][fused]") {
  // Odd and even sizes (a last row the windows skip, or not), strides 2
  // and 3, padding 1 and 0 (TF SAME pads the input itself), both formats.
  for (const auto& c : {DepthwiseCase{37, 29, 2, 1, true},
                        DepthwiseCase{16, 16, 2, 1, true},
                        DepthwiseCase{17, 18, 2, 0, false},
                        DepthwiseCase{13, 11, 3, 1, true}}) {
    CAPTURE(c.h, c.w, c.stride, c.padding, c.channels_last);
    const auto ours = run_depthwise(c, 3, 24, torch::kBFloat16, 11);
    const auto& x = ours.x;
    const auto& weight = ours.weight;
    const auto& actual = ours.output;
    const auto& upstream = ours.upstream;

    // LibTorch in bf16: the same forward and weight gradient.
    const auto xr = x.clone().requires_grad_(true);
    const auto wr = weight.clone().requires_grad_(true);
    const auto expected = torch::conv2d(
        xr, wr.to(torch::kBFloat16), {}, c.stride, c.padding, 1, 24);
    (expected * upstream).sum().backward();
    CHECK(actual.scalar_type() == torch::kBFloat16);
    CHECK(torch::equal(actual, expected));
    CHECK(ours.grad_weight.scalar_type() == torch::kFloat);
    CHECK(relative_error(ours.grad_weight, wr.grad()) <= kBf16Step);

    // The input gradient: fp32 arithmetic on the same bf16 values, rounded
    // once to bf16 (LibTorch's own bf16 one rounds its sums too).
    const auto xf = x.to(torch::kFloat).requires_grad_(true);
    const auto yf = torch::conv2d(xf,
                                  weight.to(torch::kBFloat16).to(torch::kFloat),
                                  {},
                                  c.stride,
                                  c.padding,
                                  1,
                                  24);
    (yf * upstream.to(torch::kFloat)).sum().backward();
    CHECK(ours.grad_input.scalar_type() == torch::kBFloat16);
    CHECK(ours.grad_input.sizes() == x.sizes());
    CHECK(relative_error(ours.grad_input, xf.grad()) <= kBf16Step);
    CHECK(relative_error(ours.grad_input, xr.grad()) <= 2 * kBf16Step);
  }
}

TEST_CASE("stride-1 depthwise bf16 equals LibTorch's convolution",
          "[model][fused]") {
  // The input gradient as the convolution with the turned kernel, the
  // weight gradient by 16 channels and a rest (40 = 2 x 16 + 8); odd sizes,
  // padding 1 and 0, both formats; enough rows for several strips.
  constexpr int64_t kChannels = 40;
  for (const auto& c : {DepthwiseCase{37, 29, 1, 1, true},
                        DepthwiseCase{16, 16, 1, 1, true},
                        DepthwiseCase{17, 18, 1, 1, false},
                        DepthwiseCase{13, 11, 1, 0, true}}) {
    CAPTURE(c.h, c.w, c.padding, c.channels_last);
    const auto ours = run_depthwise(c, 3, kChannels, torch::kBFloat16, 13);
    const auto& x = ours.x;
    const auto& upstream = ours.upstream;
    const auto weight = ours.weight.to(torch::kBFloat16);

    // LibTorch in bf16: the same forward, gradients within a bf16 step.
    const auto xr = x.clone().requires_grad_(true);
    const auto wr = weight.clone().requires_grad_(true);
    const auto expected = torch::conv2d(xr, wr, {}, 1, c.padding, 1, kChannels);
    (expected * upstream).sum().backward();
    CHECK(torch::equal(ours.output, expected));
    CHECK(relative_error(ours.grad_input, xr.grad()) <= 2 * kBf16Step);
    CHECK(relative_error(ours.grad_weight, wr.grad()) <= 2 * kBf16Step);

    // fp32 arithmetic on the same bf16 values, rounded once to bf16 (the
    // weight gradient too: it is in the weight's dtype, as LibTorch's).
    const auto xf = x.to(torch::kFloat).requires_grad_(true);
    const auto wf = weight.to(torch::kFloat).requires_grad_(true);
    const auto yf = torch::conv2d(xf, wf, {}, 1, c.padding, 1, kChannels);
    (yf * upstream.to(torch::kFloat)).sum().backward();
    CHECK(ours.grad_input.scalar_type() == torch::kBFloat16);
    CHECK(ours.grad_input.sizes() == x.sizes());
    CHECK(relative_error(ours.grad_input, xf.grad()) <= kBf16Step);
    CHECK(ours.grad_weight.scalar_type() == torch::kFloat);
    CHECK(relative_error(ours.grad_weight, wf.grad()) <= kBf16Step);
  }
}

TEST_CASE("the depthwise convolution applies where LibTorch's is slow",
          "[model][fused]") {
  const auto x = torch::randn({2, 8, 9, 9});
  const auto bf16 = x.to(torch::kBFloat16);
  CHECK(mnv2::depthwise_conv2d_applies(bf16, 8, 3, 2, 1));
  CHECK(mnv2::depthwise_conv2d_applies(bf16, 8, 3, 1, 1));
  CHECK_FALSE(mnv2::depthwise_conv2d_applies(bf16, 1, 3, 2, 1));
  CHECK_FALSE(mnv2::depthwise_conv2d_applies(x, 8, 3, 2, 1));
  // fp32 on channels-last input, for the weight gradient.
  const auto cl = x.contiguous(torch::MemoryFormat::ChannelsLast);
  CHECK(mnv2::depthwise_conv2d_applies(cl, 8, 3, 2, 1));
  CHECK(mnv2::depthwise_conv2d_applies(cl, 8, 3, 1, 1));
  {
    mnv2::AutocastGuard autocast(torch::kCPU, torch::kBFloat16, true);
    CHECK(mnv2::depthwise_conv2d_applies(x, 8, 3, 2, 1));
  }
  {
    mnv2::AutocastGuard autocast(torch::kCPU, torch::kHalf, true);
    CHECK_FALSE(mnv2::depthwise_conv2d_applies(x, 8, 3, 2, 1));
  }
  // Outputs at most 2 pixels high or wide, fp32 too; not under fp16.
  CHECK(mnv2::depthwise_conv2d_applies(torch::randn({2, 8, 2, 2}), 8, 3, 1, 1));
  CHECK(mnv2::depthwise_conv2d_applies(torch::randn({2, 8, 9, 3}), 8, 3, 2, 1));
  CHECK(mnv2::depthwise_conv2d_applies(torch::randn({2, 8, 4, 9}), 8, 3, 1, 0));
  CHECK_FALSE(
      mnv2::depthwise_conv2d_applies(torch::randn({2, 8, 8, 8}), 8, 3, 2, 0));
  CHECK_FALSE(
      mnv2::depthwise_conv2d_applies(torch::randn({2, 8, 3, 3}), 8, 3, 1, 1));
  {
    mnv2::AutocastGuard autocast(torch::kCPU, torch::kHalf, true);
    CHECK_FALSE(
        mnv2::depthwise_conv2d_applies(torch::randn({2, 8, 2, 2}), 8, 3, 1, 1));
  }
  torch::NoGradGuard no_grad;  // nothing to gain without a backward
  CHECK_FALSE(mnv2::depthwise_conv2d_applies(bf16, 8, 3, 2, 1));
}

TEST_CASE("fp32 depthwise on channels-last input equals LibTorch's",
          "[model][fused]") {
  // The weight gradient is ours, the rest LibTorch's: odd and even sizes,
  // strides 1 and 2, padding 1 and 0, 40 channels (2 x 16 + 8), against
  // LibTorch's convolution in double.
  for (const auto& c : {DepthwiseCase{37, 29, 1, 1, true},
                        DepthwiseCase{16, 16, 2, 1, true},
                        DepthwiseCase{17, 18, 2, 0, true},
                        DepthwiseCase{13, 11, 1, 0, true}}) {
    CAPTURE(c.h, c.w, c.stride, c.padding);
    const auto ours = run_depthwise(c, 3, 40, torch::kFloat, 17);
    const auto xd = ours.x.to(torch::kDouble).requires_grad_(true);
    const auto wd = ours.weight.to(torch::kDouble).requires_grad_(true);
    const auto yd = torch::conv2d(xd, wd, {}, c.stride, c.padding, 1, 40);
    (yd * ours.upstream.to(torch::kDouble)).sum().backward();
    CHECK(ours.output.is_contiguous(torch::MemoryFormat::ChannelsLast));
    CHECK(relative_error(ours.output, yd) <= 1e-5);
    CHECK(ours.grad_input.scalar_type() == torch::kFloat);
    CHECK(relative_error(ours.grad_input, xd.grad()) <= 1e-5);
    CHECK(ours.grad_weight.scalar_type() == torch::kFloat);
    CHECK(relative_error(ours.grad_weight, wd.grad()) <= 1e-5);
  }
}

TEST_CASE("a depthwise convolution with a small output equals LibTorch's",
          "[model][fused]") {
  // Outputs 1 or 2 pixels high or wide, where the weight gradient is ours;
  // strides 1 and 2, padding 1 and 0, both formats, 40 channels (not a
  // whole number of vectors), fp32 and bf16.
  for (const auto dtype : {torch::kFloat, torch::kBFloat16}) {
    for (const auto& c : {DepthwiseCase{2, 2, 1, 1, true},
                          DepthwiseCase{3, 3, 2, 1, false},
                          DepthwiseCase{1, 1, 1, 1, true},
                          DepthwiseCase{2, 7, 1, 1, true},
                          DepthwiseCase{5, 4, 2, 0, true}}) {
      CAPTURE(dtype, c.h, c.w, c.stride, c.padding, c.channels_last);
      const auto ours = run_depthwise(c, 5, 40, dtype, 3);
      const auto& x = ours.x;
      const auto& weight = ours.weight;
      const auto& actual = ours.output;
      const auto& upstream = ours.upstream;

      // LibTorch in the same dtype: the same forward.
      const auto expected =
          torch::conv2d(x, weight.to(dtype), {}, c.stride, c.padding, 1, 40);
      CHECK(torch::equal(actual, expected));

      // The gradients: fp32 arithmetic on the same values, rounded once to
      // the dtype (fp32: summed in another order).
      const auto xf = x.to(torch::kFloat).requires_grad_(true);
      const auto wf = weight.to(dtype).to(torch::kFloat).requires_grad_(true);
      const auto yf = torch::conv2d(xf, wf, {}, c.stride, c.padding, 1, 40);
      (yf * upstream.to(torch::kFloat)).sum().backward();
      const double tolerance = dtype == torch::kFloat ? 1e-5 : kBf16Step;
      CHECK(ours.grad_input.scalar_type() == dtype);
      CHECK(ours.grad_input.sizes() == x.sizes());
      CHECK(relative_error(ours.grad_input, xf.grad()) <= tolerance);
      CHECK(ours.grad_weight.scalar_type() == torch::kFloat);
      CHECK(relative_error(ours.grad_weight, wf.grad()) <= tolerance);
    }
  }
}
