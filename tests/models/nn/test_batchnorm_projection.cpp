// The depthwise unit's BatchNorm and ReLU6 with the projection after them,
// trained as one (batchnorm_relu6_projection): against the unfused
// operators in double (output, the four gradients, the running statistics)
// at odd sizes, channel counts off the 16-lane tiles and pixel counts off
// the function's blocks; inverted residual blocks that route to it against
// their units run one after another; where it applies.
#include "test_support.h"

#include "block_runs.h"
#include "fp32_products_guard.h"

#include <mobilenetv2/nn/batchnorm_projection.h>
#include <mobilenetv2/nn/conv_bn_activation.h>
#include <mobilenetv2/nn/fused_batchnorm.h>
#include <mobilenetv2/nn/inverted_residual.h>
#include <mobilenetv2/util/autocast_guard.h>
#include <mobilenetv2/util/cpu_features.h>

#include <catch2/catch.hpp>

#include <vector>

namespace {

using mnv2::test::graph_has;
using mnv2::test::relative_error;

constexpr double kProjectionMomentum = 0.1;
constexpr double kProjectionEps = 1e-5;

struct ProjectionShape {
  int64_t images, channels, out, h, w;
};

struct ProjectionValues {
  torch::Tensor x, gamma, beta, running_mean, running_var, weight, upstream;
};

ProjectionValues projection_values(const ProjectionShape& s, uint64_t seed) {
  torch::manual_seed(seed);
  // gamma up to 3.5 and beta up to 3, so that some outputs pass 6 as well
  // as 0 and the clamp's mask cuts at both ends.
  return {(torch::randn({s.images, s.channels, s.h, s.w}) * 1.5 + 2)
              .contiguous(torch::MemoryFormat::ChannelsLast),
          torch::rand({s.channels}) * 3 + 0.5,
          torch::rand({s.channels}) * 4 - 1,
          torch::randn({s.channels}) * 0.1,
          torch::rand({s.channels}) + 0.5,
          torch::randn({s.out, s.channels, 1, 1}) * 0.3,
          torch::randn({s.images, s.out, s.h, s.w})};
}

// Output, input, gamma, beta and weight gradients, running mean and
// variance.
using ProjectionResults = std::vector<torch::Tensor>;

// batch_norm (training), clamp(0, 6) and the 1x1 conv2d in double. The
// clamp passes the gradient where `passed` (the mask of the fused
// BatchNorm's fp32 output, whose own test checks it against LibTorch's): an
// element within rounding of 0 or 6 may clamp either way.
ProjectionResults unfused_in_double(const ProjectionValues& v,
                                    const torch::Tensor& passed) {
  const auto d = [](const torch::Tensor& t) {
    return t.to(torch::kDouble).requires_grad_(true);
  };
  auto x = d(v.x), gamma = d(v.gamma), beta = d(v.beta), weight = d(v.weight);
  auto running_mean = v.running_mean.to(torch::kDouble);
  auto running_var = v.running_var.to(torch::kDouble);
  const auto z = torch::batch_norm(x,
                                   gamma,
                                   beta,
                                   running_mean,
                                   running_var,
                                   true,
                                   kProjectionMomentum,
                                   kProjectionEps,
                                   false);
  const auto clamped = torch::where(passed, z, z.detach().clamp(0, 6));
  const auto y = torch::conv2d(clamped, weight);
  y.backward(v.upstream.to(torch::kDouble));
  return {y.detach(),
          x.grad(),
          gamma.grad(),
          beta.grad(),
          weight.grad(),
          running_mean,
          running_var};
}

// The fused BatchNorm's clamped output for these values.
torch::Tensor batchnorm_output(const ProjectionValues& v) {
  torch::NoGradGuard no_grad;
  auto running_mean = v.running_mean.clone();
  auto running_var = v.running_var.clone();
  const auto y = mnv2::fused_batchnorm_relu6(v.x,
                                             v.gamma,
                                             v.beta,
                                             running_mean,
                                             running_var,
                                             kProjectionMomentum,
                                             kProjectionEps,
                                             true);
  return y;
}

// Ours on the values in `dtype` (the input and the upstream gradient; the
// parameters stay fp32, as under autocast).
ProjectionResults ours(const ProjectionValues& v,
                       torch::ScalarType dtype = torch::kFloat) {
  const auto x = v.x.to(dtype).clone().requires_grad_(true);
  const auto gamma = v.gamma.clone().requires_grad_(true);
  const auto beta = v.beta.clone().requires_grad_(true);
  const auto weight = v.weight.clone().requires_grad_(true);
  auto running_mean = v.running_mean.clone();
  auto running_var = v.running_var.clone();
  const auto output = mnv2::batchnorm_relu6_projection(x,
                                                       gamma,
                                                       beta,
                                                       running_mean,
                                                       running_var,
                                                       kProjectionMomentum,
                                                       kProjectionEps,
                                                       weight);
  output.backward(v.upstream.to(dtype));
  return {output.detach(),
          x.grad(),
          gamma.grad(),
          beta.grad(),
          weight.grad(),
          running_mean,
          running_var};
}

}  // namespace

TEST_CASE(
    "the BatchNorm, ReLU6 and projection as one equal the unfused operators",
    "[model][fused]") {
  // Our products serve the projection off Intel's MKL: on any host, as there.
  const mnv2::test::Fp32ProductsGuard products(
      mnv2::Fp32Products::kMklElsewhere);
  // MobileNetV2's widths; 40 and 56 channels (not multiples of 16: the
  // loops' tails); one image; pixel counts that are not multiples of the
  // 128-row blocks or of the 64-row fp32 sums (3 x 13 x 11 = 429), and
  // fewer pixels than one block.
  for (const auto& s : {ProjectionShape{3, 96, 24, 13, 11},
                        ProjectionShape{2, 144, 32, 9, 10},
                        ProjectionShape{1, 32, 16, 17, 15},
                        ProjectionShape{2, 40, 8, 7, 9},
                        ProjectionShape{2, 56, 16, 5, 3},
                        ProjectionShape{4, 192, 32, 30, 28}}) {
    CAPTURE(s.images, s.channels, s.out, s.h, s.w);
    REQUIRE(mnv2::batchnorm_relu6_projection_applies(
        torch::empty({s.images, s.channels, s.h, s.w})
            .contiguous(torch::MemoryFormat::ChannelsLast),
        s.out));
    const auto values = projection_values(s, 13);
    const auto clamped = batchnorm_output(values);
    const auto mask = (clamped > 0) & (clamped < 6);
    // Both ends of the clamp cut some elements.
    CHECK((clamped == 0).any().item<bool>());
    CHECK((clamped == 6).any().item<bool>());
    const auto results = ours(values);
    CHECK(results[0].is_contiguous(torch::MemoryFormat::ChannelsLast));
    CHECK(results[1].is_contiguous(torch::MemoryFormat::ChannelsLast));
    const auto expected = unfused_in_double(values, mask);
    // output, dx, dgamma, dbeta, dW, running mean, var
    mnv2::test::check_each_within(results, expected, 1e-5);
  }
}

TEST_CASE(
    "the bf16 BatchNorm, ReLU6 and projection as one equal the unfused "
    "operators to bf16 rounding",
    "[model][fused]") {
  // Where AVX512-BF16's products serve it. On bf16 values of the input and
  // the upstream gradient, against double: the normalised activations,
  // the output and the activations' gradient are rounded to bf16 as the
  // unfused bf16 layers store them, and the weight in the products, so the
  // output and every gradient are within two bf16 steps of their largest
  // value; the running statistics are sums of the same bf16 input (1e-5).
  const auto probe = torch::empty({2, 96, 9, 9}, torch::kBFloat16)
                         .contiguous(torch::MemoryFormat::ChannelsLast);
  if (!mnv2::batchnorm_relu6_projection_applies(probe, 24)) {
    WARN("no AVX512-BF16 products on this CPU (or AMX's instead): skipped");
    return;
  }
  for (const auto& s : {ProjectionShape{3, 96, 24, 13, 11},
                        ProjectionShape{1, 32, 16, 17, 15},
                        ProjectionShape{2, 40, 8, 7, 9},
                        ProjectionShape{4, 192, 32, 30, 28}}) {
    CAPTURE(s.images, s.channels, s.out, s.h, s.w);
    auto values = projection_values(s, 14);
    values.x = values.x.to(torch::kBFloat16).to(torch::kFloat);
    values.upstream = values.upstream.to(torch::kBFloat16).to(torch::kFloat);
    const auto clamped = batchnorm_output(values);
    const auto results = ours(values, torch::kBFloat16);
    CHECK(results[0].scalar_type() == torch::kBFloat16);
    CHECK(results[1].scalar_type() == torch::kBFloat16);
    CHECK(results[0].is_contiguous(torch::MemoryFormat::ChannelsLast));
    const auto expected =
        unfused_in_double(values, (clamped > 0) & (clamped < 6));
    // output, dx, dgamma, dbeta, dW, running mean, var
    for (size_t i = 0; i < results.size(); ++i) {
      CAPTURE(i);
      CHECK(relative_error(results[i], expected[i]) <=
            (i < 5 ? 1.0 / 128 : 1e-5));
    }
  }
}

TEST_CASE(
    "inverted residual blocks train the depthwise BatchNorm with the "
    "projection as one",
    "[model][fused]") {
  const mnv2::test::Fp32ProductsGuard products(
      mnv2::Fp32Products::kMklElsewhere);
  // Against the same block's units run one after another: the same
  // forward, so the same clamp masks, and the same gradients up to float
  // rounding. Expansion 1 (the first block: 32 -> 16) and 6 at 2^14 pixels,
  // where the expansion and the depthwise convolution are one function too,
  // at both strides.
  struct Block {
    int64_t in, out, stride, expand;
  };
  for (const auto& b : {Block{32, 16, 1, 1},
                        Block{16, 24, 2, 6},
                        Block{16, 16, 1, 6},
                        Block{24, 32, 1, 6}}) {
    CAPTURE(b.in, b.out, b.stride, b.expand);
    mnv2::test::check_block_routes_to(
        mnv2::InvertedResidualOptions(b.in, b.out, b.stride, b.expand),
        "BatchNormReLU6Projection");
  }
}

TEST_CASE(
    "the BatchNorm and projection function applies to fp32 and bf16 "
    "projections our products compute",
    "[model][fused]") {
  const auto x = torch::empty({2, 144, 9, 9})
                     .contiguous(torch::MemoryFormat::ChannelsLast);
  {
    const mnv2::test::Fp32ProductsGuard products(
        mnv2::Fp32Products::kMklElsewhere);
    CHECK(mnv2::batchnorm_relu6_projection_applies(x, 24));
    CHECK(mnv2::batchnorm_relu6_projection_applies(x, 32));
    // Both sides wider than our products take, or off their 8 lanes.
    CHECK_FALSE(mnv2::batchnorm_relu6_projection_applies(x, 40));
    CHECK_FALSE(mnv2::batchnorm_relu6_projection_applies(x, 20));
    CHECK_FALSE(mnv2::batchnorm_relu6_projection_applies(
        torch::empty({2, 30, 9, 9})
            .contiguous(torch::MemoryFormat::ChannelsLast),
        16));
    CHECK_FALSE(
        mnv2::batchnorm_relu6_projection_applies(x.contiguous(), 24));  // NCHW
    // bf16 where AVX512-BF16's products compute it: not with AMX, whose
    // tiles make oneDNN's bf16 products several times faster.
    const bool bf16 = mnv2::cpu_has_avx512_bf16() && !mnv2::cpu_has_amx_bf16();
    CHECK(mnv2::batchnorm_relu6_projection_applies(x.to(torch::kBFloat16),
                                                   24) == bf16);
    {
      mnv2::AutocastGuard autocast(torch::kCPU, torch::kBFloat16, true);
      CHECK(mnv2::batchnorm_relu6_projection_applies(x, 24) == bf16);
      CHECK_FALSE(mnv2::batchnorm_relu6_projection_applies(x, 40));
      // A block under bf16 autocast routes to it there.
      mnv2::InvertedResidual block(mnv2::InvertedResidualOptions(24, 32, 2, 6));
      block->train();
      const auto y =
          block->forward(torch::randn({2, 24, 16, 16})
                             .contiguous(torch::MemoryFormat::ChannelsLast)
                             .requires_grad_(true));
      CHECK(y.scalar_type() == torch::kBFloat16);
      CHECK(graph_has(y, "BatchNormReLU6Projection") == bf16);
    }
    {
      // fp16 autocast: neither.
      mnv2::AutocastGuard autocast(torch::kCPU, torch::kHalf, true);
      CHECK_FALSE(mnv2::batchnorm_relu6_projection_applies(x, 24));
    }
    {
      torch::NoGradGuard inference;
      CHECK_FALSE(mnv2::batchnorm_relu6_projection_applies(x, 24));
    }
  }
  {
    // MKL's products on an Intel CPU keep the unfused layers.
    const mnv2::test::Fp32ProductsGuard products(
        mnv2::Fp32Products::kMklOnIntel);
    CHECK_FALSE(mnv2::batchnorm_relu6_projection_applies(x, 24));
  }
}
