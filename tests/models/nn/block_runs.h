#pragma once

// An inverted residual block's training pass run whole and as its units
// one after another, for the tests of the fused functions a block routes
// to: the same forward gives the same clamp masks, so the two agree up to
// float rounding.
#include "test_support.h"

#include <mobilenetv2/nn/conv_bn_activation.h>
#include <mobilenetv2/nn/fused_batchnorm.h>
#include <mobilenetv2/nn/inverted_residual.h>

#include <catch2/catch.hpp>

#include <string>
#include <vector>

namespace mnv2::test {

// Each of `ours` has the expected shape, is within `tolerance` of
// `expected` (relative to its largest value) and is fp32 where `expected`
// is a double reference (else of its dtype: a buffer's count).
inline void check_each_within(const std::vector<torch::Tensor>& ours,
                              const std::vector<torch::Tensor>& expected,
                              double tolerance) {
  REQUIRE(ours.size() == expected.size());
  for (size_t i = 0; i < ours.size(); ++i) {
    CAPTURE(i, expected[i].sizes());
    CHECK(ours[i].scalar_type() == (expected[i].scalar_type() == torch::kDouble
                                        ? torch::kFloat
                                        : expected[i].scalar_type()));
    CHECK(ours[i].sizes() == expected[i].sizes());
    CHECK(relative_error(ours[i], expected[i]) <= tolerance);
  }
}

// The output, the input's and parameters' gradients and the buffers after
// one training pass, and whether the graph held a node named `node`.
struct BlockRun {
  std::vector<torch::Tensor> values;
  bool routed = false;
};

// Seeded parameters with randomised BatchNorm (a wide bias range keeps
// ReLU6 from being nearly homogeneous; see randomise_batchnorm), a seeded
// [2, in, 128, 64] input (2^14 pixels, the least the expansion takes with
// 16 input channels) and upstream gradient.
inline BlockRun run_block(const mnv2::InvertedResidualOptions& options,
                          bool whole,
                          const std::string& node) {
  torch::manual_seed(5);
  mnv2::InvertedResidual block(options);
  block->train();
  randomise_batchnorm(*block, 1.0);
  torch::manual_seed(6);
  const auto x = (torch::randn({2, options.in_channels(), 128, 64}) + 1)
                     .contiguous(torch::MemoryFormat::ChannelsLast)
                     .requires_grad_(true);
  torch::Tensor y = x;
  if (whole) {
    y = block->forward(x);
  } else {
    auto& units = *block->conv;
    for (size_t i = 0; i + 2 < units.size(); ++i) {
      y = units[i]->as<mnv2::ConvBNActivationImpl>()->forward(y);
    }
    y = mnv2::training_conv2d(
        *units[units.size() - 2]->as<torch::nn::Conv2dImpl>(), y);
    y = mnv2::batchnorm_relu6(
        *units[units.size() - 1]->as<torch::nn::BatchNorm2dImpl>(), y, false);
    if (options.stride() == 1 &&
        options.in_channels() == options.out_channels()) {
      y = x + y;
    }
  }
  torch::manual_seed(7);
  y.backward(torch::randn(y.sizes()));
  BlockRun run{{y.detach(), x.grad()}, graph_has(y, node)};
  for (const auto& p : block->parameters()) {
    run.values.push_back(p.grad());
  }
  for (const auto& b : block->buffers()) {
    run.values.push_back(b.clone());
  }
  return run;
}

// The block run whole routes to `node`, its units apart do not, and the two
// agree within 1e-5.
inline void check_block_routes_to(const mnv2::InvertedResidualOptions& options,
                                  const std::string& node) {
  const auto whole = run_block(options, true, node);
  const auto apart = run_block(options, false, node);
  CHECK(whole.routed);
  CHECK_FALSE(apart.routed);
  check_each_within(whole.values, apart.values, 1e-5);
}

}  // namespace mnv2::test
