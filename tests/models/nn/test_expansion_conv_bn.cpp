// The expansion (1x1 convolution, BatchNorm, ReLU6 from the input's
// moments) against the unfused operators in double: output, the four
// gradients and the running statistics; the unit that routes to it; where it
// applies.
#include "test_support.h"

#include "fp32_products_guard.h"

#include "../models/nn/amx_products.h"

#include <mobilenetv2/nn/conv_bn_activation.h>
#include <mobilenetv2/nn/expansion_conv_bn.h>
#include <mobilenetv2/util/autocast_guard.h>
#include <mobilenetv2/util/cpu_features.h>

#include <catch2/catch.hpp>

namespace {

using mnv2::test::relative_error;

constexpr double kExpansionMomentum = 0.1;
constexpr double kExpansionEps = 1e-5;

struct ExpansionShape {
  int64_t images, in, out, h, w;
};

// A channels-last input away from zero mean (the statistics must centre
// it), the layer's parameters and running statistics, an upstream gradient.
struct ExpansionValues {
  torch::Tensor x, conv_weight, gamma, beta, running_mean, running_var,
      upstream;
};
ExpansionValues expansion_values(const ExpansionShape& s, uint64_t seed) {
  torch::manual_seed(seed);
  return {(torch::randn({s.images, s.in, s.h, s.w}) * 1.5 + 2)
              .contiguous(torch::MemoryFormat::ChannelsLast),
          torch::randn({s.out, s.in, 1, 1}) * 0.3,
          torch::rand({s.out}) + 0.5,
          torch::rand({s.out}) * 2 - 1,
          torch::randn({s.out}) * 0.1,
          torch::rand({s.out}) + 0.5,
          torch::randn({s.images, s.out, s.h, s.w})};
}

// Output, input, convolution weight, gamma and beta gradients, running mean
// and variance.
using ExpansionResults = std::vector<torch::Tensor>;

// torch::conv2d, torch::batch_norm (training) and clamp(0, 6) in double.
// The clamp's gradient mask is `output`'s (0 < y < 6): where the BatchNorm's
// output lies within rounding of 0 or 6 the two computations may clamp one
// element differently, which would move every gradient sum; the outputs
// themselves are compared, so the mask is checked through them.
ExpansionResults unfused_in_double(const ExpansionValues& v,
                                   const torch::Tensor& output) {
  const auto d = [](const torch::Tensor& t) {
    return t.to(torch::kDouble).requires_grad_(true);
  };
  auto x = d(v.x), weight = d(v.conv_weight), gamma = d(v.gamma),
       beta = d(v.beta);
  auto running_mean = v.running_mean.to(torch::kDouble);
  auto running_var = v.running_var.to(torch::kDouble);
  const auto z = torch::batch_norm(torch::conv2d(x, weight),
                                   gamma,
                                   beta,
                                   running_mean,
                                   running_var,
                                   true,
                                   kExpansionMomentum,
                                   kExpansionEps,
                                   false);
  const auto passed = (output > 0) & (output < 6);
  z.backward(v.upstream.to(torch::kDouble) * passed);
  return {z.detach().clamp(0, 6),
          x.grad(),
          weight.grad(),
          gamma.grad(),
          beta.grad(),
          running_mean,
          running_var};
}

ExpansionResults ours(const ExpansionValues& v,
                      torch::ScalarType dtype = torch::kFloat) {
  const auto x = v.x.to(dtype, false, true).requires_grad_(true);  // a copy
  const auto weight = v.conv_weight.clone().requires_grad_(true);
  const auto gamma = v.gamma.clone().requires_grad_(true);
  const auto beta = v.beta.clone().requires_grad_(true);
  auto running_mean = v.running_mean.clone();
  auto running_var = v.running_var.clone();
  const auto output = mnv2::expansion_conv_bn_relu6(x,
                                                    weight,
                                                    gamma,
                                                    beta,
                                                    running_mean,
                                                    running_var,
                                                    kExpansionMomentum,
                                                    kExpansionEps);
  output.backward(v.upstream.to(dtype));
  return {output.detach(),
          x.grad(),
          weight.grad(),
          gamma.grad(),
          beta.grad(),
          running_mean,
          running_var};
}

void check_equal(const ExpansionResults& ours,
                 const ExpansionResults& expected) {
  REQUIRE(ours.size() == expected.size());
  for (size_t i = 0; i < ours.size(); ++i) {
    CAPTURE(i);  // output, dx, dW, dgamma, dbeta, running mean, variance
    CHECK(ours[i].scalar_type() == torch::kFloat);
    CHECK(ours[i].sizes() == expected[i].sizes());
    CHECK(relative_error(ours[i], expected[i]) <= 1e-5);
  }
}

}  // namespace

TEST_CASE("the expansion equals convolution, BatchNorm and ReLU6",
          "[model][fused]") {
  mnv2::test::with_each_fp32_products([&] {
    // Odd sizes, a single image, MobileNetV2's expansion by 6 and others.
    for (const auto& s : {ExpansionShape{3, 16, 96, 13, 11},
                          ExpansionShape{2, 5, 24, 7, 9},
                          ExpansionShape{1, 24, 144, 10, 10},
                          ExpansionShape{4, 3, 40, 1, 5}}) {
      CAPTURE(s.images, s.in, s.out, s.h, s.w);
      const auto values = expansion_values(s, 7);
      const auto results = ours(values);
      CHECK(results[0].is_contiguous(torch::MemoryFormat::ChannelsLast));
      CHECK(results[1].is_contiguous(torch::MemoryFormat::ChannelsLast));
      // Some outputs clamped at each end, so both masks are exercised.
      CHECK((results[0] == 0).any().item<bool>());
      check_equal(results, unfused_in_double(values, results[0]));
    }
    {  // an NCHW input gives the same
      auto values = expansion_values({3, 16, 96, 13, 11}, 7);
      values.x = values.x.contiguous();
      const auto results = ours(values);
      check_equal(results, unfused_in_double(values, results[0]));
    }
  });
}

TEST_CASE("the bf16 expansion equals the unfused operators to bf16 rounding",
          "[model][fused]") {
  // On bf16 activations: the reference takes the same bf16 input and
  // upstream gradient in double. The output (a bf16 convolution with the
  // BatchNorm folded into its weight) and the input's gradient (rounded to
  // bf16 once) are within two bf16 steps of the largest value (0.003 of it
  // here; a 1% error in the folded mean gives 0.008-0.011). The
  // parameters' gradients and the running statistics are sums in fp32 and
  // fp64 (6e-7 here).
  mnv2::test::with_each_fp32_products([&] {
    for (const auto& s : {ExpansionShape{3, 16, 96, 13, 11},
                          ExpansionShape{1, 24, 144, 10, 10}}) {
      CAPTURE(s.images, s.in, s.out, s.h, s.w);
      auto values = expansion_values(s, 9);
      values.x = values.x.to(torch::kBFloat16).to(torch::kFloat);
      values.upstream = values.upstream.to(torch::kBFloat16).to(torch::kFloat);
      const auto results = ours(values, torch::kBFloat16);
      CHECK(results[0].scalar_type() == torch::kBFloat16);
      CHECK(results[1].scalar_type() == torch::kBFloat16);
      CHECK(results[0].is_contiguous(torch::MemoryFormat::ChannelsLast));
      CHECK((results[0] == 0).any().item<bool>());
      const auto expected =
          unfused_in_double(values, results[0].to(torch::kFloat));
      for (size_t i = 0; i < results.size(); ++i) {
        CAPTURE(i);  // output, dx, dW, dgamma, dbeta, running mean, variance
        CHECK(relative_error(results[i], expected[i]) <=
              (i < 2 ? 1.0 / 128 : 1e-5));
      }
    }
  });
}

TEST_CASE("a training 1x1 unit widening a large input takes the expansion",
          "[model][fused]") {
  mnv2::test::with_each_fp32_products([&] {
    // 2^16 pixels: the least the expansion takes on a CPU other than Intel's,
    // and more than the 2^14 it takes there.
    const ExpansionShape s{4, 8, 48, 128, 128};
    const auto values = expansion_values(s, 8);
    REQUIRE(mnv2::expansion_conv_bn_relu6_applies(values.x, s.out));
    mnv2::ConvBNActivation unit(
        mnv2::ConvBNActivationOptions(s.in, s.out).kernel_size(1));
    auto& conv = *unit->ptr(0)->as<torch::nn::Conv2dImpl>();
    auto& bn = *unit->ptr(1)->as<torch::nn::BatchNorm2dImpl>();
    {
      torch::NoGradGuard no_grad;
      conv.weight.copy_(values.conv_weight);
      bn.weight.copy_(values.gamma);
      bn.bias.copy_(values.beta);
      bn.running_mean.copy_(values.running_mean);
      bn.running_var.copy_(values.running_var);
    }
    unit->train();
    const auto x = values.x.clone().requires_grad_(true);
    const auto output = unit->forward(x);
    output.backward(values.upstream);
    const ExpansionResults results{output.detach(),
                                   x.grad(),
                                   conv.weight.grad(),
                                   bn.weight.grad(),
                                   bn.bias.grad(),
                                   bn.running_mean,
                                   bn.running_var};
    check_equal(results, unfused_in_double(values, results[0]));
    CHECK(bn.num_batches_tracked.item<int64_t>() == 1);
    // Its backward is the expansion's, not a convolution's.
    CHECK(output.grad_fn()->name().find("ExpansionConvBNReLU6") !=
          std::string::npos);
  });
}

TEST_CASE("the expansion applies to large fp32 channels-last widenings",
          "[model][fused]") {
  const auto cl = [](torch::Tensor t) {
    return t.contiguous(torch::MemoryFormat::ChannelsLast);
  };
  // The least pixels: 2^14 where the products are MKL's on an Intel CPU,
  // 2^16 elsewhere (2 x 64 x 128 and 8 x 64 x 128) for 4 input channels,
  // and 2^14 everywhere for the multiples of 8 that our own products take.
  const bool intel = at::globalContext().hasMKL() && mnv2::cpu_is_intel();
  CHECK(mnv2::expansion_min_pixels(4) == (intel ? 1 << 14 : 1 << 16));
  CHECK(mnv2::expansion_min_pixels(20) == (intel ? 1 << 14 : 1 << 16));
  for (const int64_t in : {8, 16, 24, 64, 72}) {
    CHECK(mnv2::expansion_min_pixels(in) == 1 << 14);
  }
  CHECK(mnv2::expansion_conv_bn_relu6_applies(
      cl(torch::empty({2, 16, 64, 128})), 64));
  const int64_t images = intel ? 2 : 8;
  const auto x = cl(torch::empty({images, 4, 64, 128}));
  CHECK(mnv2::expansion_conv_bn_relu6_applies(x, 24));
  CHECK(mnv2::expansion_conv_bn_relu6_applies(x, 16));  // 4x, the least
  CHECK_FALSE(mnv2::expansion_conv_bn_relu6_applies(x, 15));
  CHECK_FALSE(mnv2::expansion_conv_bn_relu6_applies(x.contiguous(), 24));
  CHECK_FALSE(
      mnv2::expansion_conv_bn_relu6_applies(x.to(torch::kBFloat16), 24));
  CHECK_FALSE(mnv2::expansion_conv_bn_relu6_applies(
      cl(torch::empty({images, 4, 64, 127})), 24));
  // bf16 (a bf16 input, or fp32 under bf16 autocast) with input channels
  // that our products take, where bf16 is native and, where oneDNN has AMX's
  // tiles, the backward's products run on them too.
  const bool bf16 =
      mnv2::cpu_has_native_bf16() &&
      (!mnv2::cpu_has_amx_bf16() || mnv2::amx_products::available());
  const auto wide = cl(torch::empty({2, 16, 64, 128}));
  CHECK(mnv2::expansion_conv_bn_relu6_applies(wide.to(torch::kBFloat16), 96) ==
        bf16);
  {
    mnv2::AutocastGuard autocast(torch::kCPU, torch::kBFloat16, true);
    CHECK(mnv2::expansion_conv_bn_relu6_applies(wide, 96) == bf16);
  }
  {
    torch::NoGradGuard inference;
    CHECK_FALSE(mnv2::expansion_conv_bn_relu6_applies(x, 24));
  }
  {
    mnv2::AutocastGuard autocast(torch::kCPU, torch::kBFloat16, true);
    CHECK_FALSE(mnv2::expansion_conv_bn_relu6_applies(x, 24));
  }
}
