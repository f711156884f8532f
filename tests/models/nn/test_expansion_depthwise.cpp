// The expansion with the depthwise convolution after it, trained as one
// (expansion_depthwise): against the unfused operators in double (output,
// the six gradients, the running statistics) at strides 1 and 2, odd sizes
// and channel counts off the 16-lane tiles; an inverted residual block that
// routes to it; where it applies.
#include "test_support.h"

#include "block_runs.h"
#include "fp32_products_guard.h"

#include "../models/nn/amx_products.h"

#include <mobilenetv2/nn/conv_bn_activation.h>
#include <mobilenetv2/nn/expansion_conv_bn.h>
#include <mobilenetv2/nn/expansion_depthwise.h>
#include <mobilenetv2/nn/fused_batchnorm.h>
#include <mobilenetv2/nn/inverted_residual.h>
#include <mobilenetv2/util/autocast_guard.h>
#include <mobilenetv2/util/cpu_features.h>
#include <mobilenetv2/util/memory_format.h>

#include <catch2/catch.hpp>

#include <vector>

namespace {

using mnv2::test::graph_has;
using mnv2::test::relative_error;

constexpr double kPairMomentum = 0.1;
constexpr double kPairEps = 1e-5;

struct PairShape {
  int64_t images, in, out, h, w, stride;
};

struct PairValues {
  torch::Tensor x, conv_weight, gamma, beta, running_mean, running_var,
      depthwise_weight, upstream;
};

PairValues pair_values(const PairShape& s, uint64_t seed) {
  torch::manual_seed(seed);
  const int64_t oh = (s.h - 1) / s.stride + 1, ow = (s.w - 1) / s.stride + 1;
  return {(torch::randn({s.images, s.in, s.h, s.w}) * 1.5 + 2)
              .contiguous(torch::MemoryFormat::ChannelsLast),
          torch::randn({s.out, s.in, 1, 1}) * 0.3,
          torch::rand({s.out}) + 0.5,
          torch::rand({s.out}) * 2 - 1,
          torch::randn({s.out}) * 0.1,
          torch::rand({s.out}) + 0.5,
          torch::randn({s.out, 1, 3, 3}) * 0.4,
          torch::randn({s.images, s.out, oh, ow})};
}

// Output, input, convolution weight, gamma, beta and depthwise weight
// gradients, running mean and variance.
using PairResults = std::vector<torch::Tensor>;

// conv2d, batch_norm (training), clamp(0, 6) and the depthwise conv2d in
// double. The clamp passes the gradient where `passed` (the mask of the
// expansion's fp32 output, from expansion_conv_bn_relu6, whose own test
// checks it): an element within rounding of 0 or 6 may clamp either way,
// which would move every gradient sum.
PairResults unfused_in_double(const PairValues& v,
                              int64_t stride,
                              const torch::Tensor& passed) {
  const auto d = [](const torch::Tensor& t) {
    return t.to(torch::kDouble).requires_grad_(true);
  };
  auto x = d(v.x), weight = d(v.conv_weight), gamma = d(v.gamma),
       beta = d(v.beta), depthwise = d(v.depthwise_weight);
  auto running_mean = v.running_mean.to(torch::kDouble);
  auto running_var = v.running_var.to(torch::kDouble);
  const auto z = torch::batch_norm(torch::conv2d(x, weight),
                                   gamma,
                                   beta,
                                   running_mean,
                                   running_var,
                                   true,
                                   kPairMomentum,
                                   kPairEps,
                                   false);
  const auto clamped = torch::where(passed, z, z.detach().clamp(0, 6));
  const auto y = torch::conv2d(clamped, depthwise, {}, stride, 1, 1, z.size(1));
  y.backward(v.upstream.to(torch::kDouble));
  return {y.detach(),
          x.grad(),
          weight.grad(),
          gamma.grad(),
          beta.grad(),
          depthwise.grad(),
          running_mean,
          running_var};
}

// The mask of the expansion's own output on these values.
torch::Tensor expansion_mask(const PairValues& v,
                             torch::ScalarType dtype = torch::kFloat) {
  torch::NoGradGuard no_grad;
  auto running_mean = v.running_mean.clone();
  auto running_var = v.running_var.clone();
  const auto y = mnv2::expansion_conv_bn_relu6(v.x.to(dtype),
                                               v.conv_weight,
                                               v.gamma,
                                               v.beta,
                                               running_mean,
                                               running_var,
                                               kPairMomentum,
                                               kPairEps);
  return (y > 0) & (y < 6);
}

PairResults ours(const PairValues& v,
                 int64_t stride,
                 torch::ScalarType dtype = torch::kFloat) {
  const auto x = v.x.to(dtype, false, true).requires_grad_(true);  // a copy
  const auto weight = v.conv_weight.clone().requires_grad_(true);
  const auto gamma = v.gamma.clone().requires_grad_(true);
  const auto beta = v.beta.clone().requires_grad_(true);
  const auto depthwise = v.depthwise_weight.clone().requires_grad_(true);
  auto running_mean = v.running_mean.clone();
  auto running_var = v.running_var.clone();
  const auto output = mnv2::expansion_depthwise(x,
                                                weight,
                                                gamma,
                                                beta,
                                                running_mean,
                                                running_var,
                                                kPairMomentum,
                                                kPairEps,
                                                depthwise,
                                                stride);
  output.backward(v.upstream.to(dtype));
  return {output.detach(),
          x.grad(),
          weight.grad(),
          gamma.grad(),
          beta.grad(),
          depthwise.grad(),
          running_mean,
          running_var};
}

}  // namespace

TEST_CASE(
    "the expansion with its depthwise convolution equals the unfused "
    "operators",
    "[model][fused]") {
  mnv2::test::with_each_fp32_products([&] {
    // Odd sizes, one image, MobileNetV2's widths, channel counts that are
    // not multiples of 16 (the loops' tails) and an input that is not a
    // multiple of 8 (LibTorch's products).
    for (const auto& s : {PairShape{3, 16, 96, 13, 11, 2},
                          PairShape{2, 8, 48, 9, 10, 1},
                          PairShape{1, 24, 144, 10, 10, 1},
                          PairShape{2, 16, 100, 7, 6, 1},
                          PairShape{2, 5, 40, 7, 9, 2},
                          PairShape{3, 8, 56, 2, 5, 2}}) {
      CAPTURE(s.images, s.in, s.out, s.h, s.w, s.stride);
      const auto values = pair_values(s, 11);
      const auto mask = expansion_mask(values);
      // Some of the expansion's outputs clamped, so the mask matters.
      CHECK_FALSE(mask.all().item<bool>());
      const auto results = ours(values, s.stride);
      CHECK(results[0].is_contiguous(torch::MemoryFormat::ChannelsLast));
      CHECK(results[1].is_contiguous(torch::MemoryFormat::ChannelsLast));
      const auto expected = unfused_in_double(values, s.stride, mask);
      // output, dx, dW, dgamma, dbeta, d depthwise, running mean, var
      mnv2::test::check_each_within(results, expected, 1e-5);
    }
  });
}

TEST_CASE(
    "the bf16 expansion with its depthwise convolution equals the unfused "
    "operators to bf16 rounding",
    "[model][fused]") {
  // On bf16 activations: the reference takes the same bf16 input, depthwise
  // kernel and upstream gradient in double. The expanded activations and
  // their gradient are rounded to bf16, as the unfused bf16 layers store
  // them, so the output and every gradient are within two bf16 steps of
  // their largest value (0.001-0.004 measured); the running statistics are
  // fp32 and fp64 sums of the same bf16 input (1e-7).
  mnv2::test::with_each_fp32_products([&] {
    for (const auto& s : {PairShape{3, 16, 96, 13, 11, 2},
                          PairShape{1, 24, 144, 10, 10, 1},
                          PairShape{2, 8, 56, 9, 7, 1},
                          // rows wider than a block of the products
                          PairShape{1, 16, 32, 2, 1031, 1}}) {
      CAPTURE(s.images, s.in, s.out, s.h, s.w, s.stride);
      auto values = pair_values(s, 12);
      values.x = values.x.to(torch::kBFloat16).to(torch::kFloat);
      values.upstream = values.upstream.to(torch::kBFloat16).to(torch::kFloat);
      values.depthwise_weight =
          values.depthwise_weight.to(torch::kBFloat16).to(torch::kFloat);
      const auto results = ours(values, s.stride, torch::kBFloat16);
      CHECK(results[0].scalar_type() == torch::kBFloat16);
      CHECK(results[1].scalar_type() == torch::kBFloat16);
      CHECK(results[0].is_contiguous(torch::MemoryFormat::ChannelsLast));
      const auto expected = unfused_in_double(
          values, s.stride, expansion_mask(values, torch::kBFloat16));
      REQUIRE(results.size() == expected.size());
      for (size_t i = 0; i < results.size(); ++i) {
        // output, dx, dW, dgamma, dbeta, d depthwise, running mean, var
        CAPTURE(i);
        CHECK(relative_error(results[i], expected[i]) <=
              (i < 6 ? 1.0 / 128 : 1e-5));
      }
    }
  });
}

TEST_CASE(
    "an inverted residual block trains its expansion and depthwise "
    "convolution as one",
    "[model][fused]") {
  // 2 x 128 x 64 = 2^14 pixels, the least the expansion takes with 16 input
  // channels. Against the same block's units run one after another (the
  // expansion alone, then the depthwise unit): the same forward, so the
  // same clamp masks, and the same gradients up to float rounding. (Against
  // LibTorch's operators in double an element within rounding of a clamp
  // bound flips a BatchNorm weight's gradient by about 1%, with or without
  // the pair; the function's own test above is against double.)
  for (const int64_t stride : {1, 2}) {
    CAPTURE(stride);
    mnv2::test::check_block_routes_to(
        mnv2::InvertedResidualOptions(16, 16, stride, 6), "ExpansionDepthwise");
  }
}

TEST_CASE("the expansion's weight gradients have their parameters' strides",
          "[model][fused]") {
  // As test_training_conv.cpp's check on the small step, whose maps are too
  // small for the expansion: with channels-last weights (use_channels_last)
  // a 1x1 weight's gradient in contiguous strides makes DDP's Reducer warn
  // at every run (the main job did) and copy it. fp32, and bf16 where the
  // pair takes it.
  for (const bool bf16 : {false, true}) {
    CAPTURE(bf16);
    torch::manual_seed(3);
    mnv2::InvertedResidual block(mnv2::InvertedResidualOptions(16, 24, 2, 6));
    mnv2::use_channels_last(*block);
    block->train();
    const auto x = torch::randn({2, 16, 128, 64})
                       .contiguous(torch::MemoryFormat::ChannelsLast);
    torch::Tensor y;
    {
      mnv2::AutocastGuard autocast(torch::kCPU, torch::kBFloat16, bf16);
      y = block->forward(x);
    }
    if (!graph_has(y, "ExpansionDepthwise")) {
      CHECK(bf16);  // fp32 always takes it here
      continue;
    }
    y.to(torch::kFloat).sum().backward();
    int64_t squeezed = 0;
    for (const auto& item : block->named_parameters()) {
      const auto& p = item.value();
      CAPTURE(item.key(), p.sizes(), p.strides(), p.grad().strides());
      CHECK(p.grad().strides() == p.strides());
      squeezed += p.strides() != torch::empty(p.sizes()).strides() ? 1 : 0;
    }
    CHECK(squeezed >= 3);  // the two 1x1 weights and the depthwise one
  }
}

TEST_CASE(
    "the expansion and depthwise pair applies to 3x3 strides 1 and 2 "
    "where the expansion does",
    "[model][fused]") {
  const auto x = torch::empty({2, 16, 128, 64})
                     .contiguous(torch::MemoryFormat::ChannelsLast);
  CHECK(mnv2::expansion_depthwise_applies(x, 96, 3, 1));
  CHECK(mnv2::expansion_depthwise_applies(x, 96, 3, 2));
  CHECK_FALSE(mnv2::expansion_depthwise_applies(x, 96, 5, 1));
  CHECK_FALSE(mnv2::expansion_depthwise_applies(x, 96, 3, 3));
  CHECK_FALSE(mnv2::expansion_depthwise_applies(x, 96, 3, 1) !=
              mnv2::expansion_conv_bn_relu6_applies(x, 96));
  // bf16 (a bf16 input, or fp32 under bf16 autocast) where the expansion
  // alone takes it: native bf16, with the backward's products on AMX's
  // tiles where oneDNN has them.
  const bool bf16 =
      mnv2::cpu_has_native_bf16() &&
      (!mnv2::cpu_has_amx_bf16() || mnv2::amx_products::available());
  CHECK(mnv2::expansion_depthwise_applies(x.to(torch::kBFloat16), 96, 3, 1) ==
        bf16);
  {
    mnv2::AutocastGuard autocast(torch::kCPU, torch::kBFloat16, true);
    CHECK(mnv2::expansion_depthwise_applies(x, 96, 3, 2) == bf16);
    // A block under bf16 autocast routes to it there.
    mnv2::InvertedResidual block(mnv2::InvertedResidualOptions(16, 24, 2, 6));
    block->train();
    const auto y =
        block->forward(torch::randn({2, 16, 128, 64})
                           .contiguous(torch::MemoryFormat::ChannelsLast)
                           .requires_grad_(true));
    CHECK(y.scalar_type() == torch::kBFloat16);
    CHECK(graph_has(y, "ExpansionDepthwise") == bf16);
  }
  {
    torch::NoGradGuard inference;
    CHECK_FALSE(mnv2::expansion_depthwise_applies(x, 96, 3, 1));
  }
  // Too few pixels for the expansion.
  CHECK_FALSE(mnv2::expansion_depthwise_applies(
      torch::empty({1, 16, 8, 8}).contiguous(torch::MemoryFormat::ChannelsLast),
      96,
      3,
      1));
}
