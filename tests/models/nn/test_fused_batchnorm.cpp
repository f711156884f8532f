// The fused training BatchNorm + ReLU6 against LibTorch's own operators
// (torch::batch_norm in training mode, then hardtanh): outputs, running
// statistics and gradients, alone and inside the whole network.
#include "test_support.h"

#include <mobilenetv2/nn/fused_batchnorm.h>
#include <mobilenetv2/util/autocast_guard.h>
#include <mobilenetv2/util/memory_format.h>

#include <catch2/catch.hpp>

// The loops' private header, for the bounds the bf16 backward masks with.
#include "../models/nn/fused_batchnorm_loops.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>
#include <vector>

namespace {

using mnv2::test::relative_error;

// Restores the switch whatever a test does.
// One BatchNorm (+ ReLU6) computed by LibTorch (batch_norm in training
// mode, then hardtanh) and by the fused function from the same inputs:
// odd sizes, activations of `dtype` with a mean far from 0 and values
// beyond both clamp bounds, fp32 parameters and statistics.
struct BothWays {
  torch::Tensor expected, actual;
  torch::Tensor mean_ref, var_ref, mean_ours, var_ours;
  torch::Tensor xr, wr, br, xo, wo, bo;  // their gradients
};

BothWays both_ways(bool relu6,
                   torch::ScalarType dtype,
                   uint64_t seed,
                   int64_t channels = 37) {
  torch::manual_seed(seed);
  const auto x = (torch::randn({3, channels, 11, 13}) * 4 + 1.5)
                     .to(dtype)
                     .contiguous(torch::MemoryFormat::ChannelsLast);
  REQUIRE(mnv2::fused_batchnorm_applies(x));
  const auto weight = (torch::rand({channels}) + 0.5) * 3;
  const auto bias = torch::randn({channels});
  const auto upstream = torch::randn_like(x);
  BothWays r;
  r.mean_ref = torch::randn({channels});
  r.var_ref = torch::rand({channels}) + 0.5;
  r.mean_ours = r.mean_ref.clone();
  r.var_ours = r.var_ref.clone();

  r.xr = x.clone().requires_grad_(true);
  r.wr = weight.clone().requires_grad_(true);
  r.br = bias.clone().requires_grad_(true);
  r.expected = torch::batch_norm(
      r.xr, r.wr, r.br, r.mean_ref, r.var_ref, true, 0.1, 1e-5, false);
  if (relu6) {
    r.expected = torch::hardtanh(r.expected, 0, 6);
  }
  (r.expected * upstream).sum().backward();

  r.xo = x.clone().requires_grad_(true);
  r.wo = weight.clone().requires_grad_(true);
  r.bo = bias.clone().requires_grad_(true);
  r.actual = mnv2::fused_batchnorm_relu6(
      r.xo, r.wo, r.bo, r.mean_ours, r.var_ours, 0.1, 1e-5, relu6);
  (r.actual * upstream).sum().backward();
  return r;
}

}  // namespace

TEST_CASE("fused BatchNorm + ReLU6 equals batch_norm then hardtanh",
          "[model][fused]") {
  for (const bool relu6 : {true, false}) {
    CAPTURE(relu6);
    const auto r = both_ways(relu6, torch::kFloat, relu6 ? 1 : 2);
    CHECK(relative_error(r.actual, r.expected) < 1e-5);
    CHECK(r.actual.is_contiguous(torch::MemoryFormat::ChannelsLast));
    if (relu6) {
      // Both ends of the clamp are exercised.
      CHECK((r.expected == 0).sum().item<int64_t>() > 100);
      CHECK((r.expected == 6).sum().item<int64_t>() > 10);
    }
    CHECK(relative_error(r.mean_ours, r.mean_ref) < 1e-5);
    CHECK(relative_error(r.var_ours, r.var_ref) < 1e-5);
    CHECK(relative_error(r.xo.grad(), r.xr.grad()) < 1e-5);
    CHECK(relative_error(r.wo.grad(), r.wr.grad()) < 1e-5);
    CHECK(relative_error(r.bo.grad(), r.br.grad()) < 1e-5);
  }
}

TEST_CASE("fused bf16 BatchNorm + ReLU6 equals LibTorch's bf16 ones",
          "[model][fused]") {
  // bf16 activations, fp32 parameters and statistics, as under autocast.
  // LibTorch's bf16 BatchNorm also computes in fp32 and rounds once; the
  // two differ where sums in another order move a value across a bf16
  // rounding boundary: one bf16 step of the largest value (7 stored bits:
  // up to 2^-7 of it).
  constexpr double kBf16Step = 1.0 / 128;
  for (const bool relu6 : {true, false}) {
    const auto r = both_ways(relu6, torch::kBFloat16, relu6 ? 3 : 4);
    CAPTURE(relu6);
    REQUIRE(r.expected.scalar_type() == torch::kBFloat16);
    CHECK(r.actual.scalar_type() == torch::kBFloat16);
    CHECK(r.actual.is_contiguous(torch::MemoryFormat::ChannelsLast));
    CHECK(relative_error(r.actual, r.expected) <= kBf16Step);
    CHECK(relative_error(r.mean_ours, r.mean_ref) < 1e-5);
    CHECK(relative_error(r.var_ours, r.var_ref) < 1e-5);
    CHECK(r.xo.grad().scalar_type() == torch::kBFloat16);
    CHECK(relative_error(r.xo.grad(), r.xr.grad()) <= kBf16Step);
    CHECK(r.wo.grad().scalar_type() == torch::kFloat);
    CHECK(relative_error(r.wo.grad(), r.wr.grad()) < 1e-3);
    CHECK(relative_error(r.bo.grad(), r.br.grad()) < 1e-3);
  }
}

TEST_CASE("fused BatchNorm groups rows of few channels, fp32 and bf16",
          "[model][fused]") {
  // The loops take rows k at a time as one row of k x channels (8 -> 64
  // rows, 24 -> 24, 144 -> 4, 37 -> 32, above), and the 429 rows here leave
  // rows past the last group (45, 21, 1): both parts must sum into the
  // right channel and scale with the right constants.
  constexpr double kBf16Step = 1.0 / 128;
  for (const int64_t channels : {8, 24, 144}) {
    for (const auto dtype : {torch::kFloat, torch::kBFloat16}) {
      CAPTURE(channels, dtype);
      const auto r = both_ways(true, dtype, 5, channels);
      const double values = dtype == torch::kFloat ? 1e-5 : kBf16Step;
      const double parameters = dtype == torch::kFloat ? 1e-5 : 1e-3;
      CHECK(relative_error(r.actual, r.expected) <= values);
      CHECK(relative_error(r.mean_ours, r.mean_ref) < 1e-5);
      CHECK(relative_error(r.var_ours, r.var_ref) < 1e-5);
      CHECK(relative_error(r.xo.grad(), r.xr.grad()) <= values);
      CHECK(relative_error(r.wo.grad(), r.wr.grad()) < parameters);
      CHECK(relative_error(r.bo.grad(), r.br.grad()) < parameters);
    }
  }
}

TEST_CASE("fused BatchNorm applies to CPU fp32 or bf16 channels_last only",
          "[model][fused]") {
  const auto x = torch::randn({2, 8, 5, 5});
  CHECK_FALSE(mnv2::fused_batchnorm_applies(x));  // NCHW
  CHECK(mnv2::fused_batchnorm_applies(
      x.contiguous(torch::MemoryFormat::ChannelsLast)));
  CHECK(mnv2::fused_batchnorm_applies(
      x.to(torch::kBFloat16).contiguous(torch::MemoryFormat::ChannelsLast)));
  CHECK_FALSE(mnv2::fused_batchnorm_applies(
      x.to(torch::kHalf).contiguous(torch::MemoryFormat::ChannelsLast)));
  {
    // fp32 under bf16 autocast is not what the BatchNorm would see.
    mnv2::AutocastGuard autocast(torch::kCPU, torch::kBFloat16, true);
    CHECK_FALSE(mnv2::fused_batchnorm_applies(
        x.contiguous(torch::MemoryFormat::ChannelsLast)));
  }
  // One value per channel: LibTorch's own error, not a division by zero.
  CHECK_FALSE(mnv2::fused_batchnorm_applies(
      torch::randn({1, 8, 1, 1})
          .contiguous(torch::MemoryFormat::ChannelsLast)));
}

TEST_CASE("a training step with the fused kernels is as exact as one without",
          "[model][fused]") {
  // Strides 1 and 2, residual and plain blocks, an odd input size. The
  // reference is LibTorch's own operators in fp64; both fp32 steps are
  // measured against it. LibTorch's fp32 step is not the reference: on one
  // thread its BatchNorm statistics are about 1e-3 off fp64 in the first
  // layers' gradients (2026-12-05, AMD EPYC), twenty times the fused ones.
  const auto run = [](bool fused, torch::ScalarType dtype, uint64_t seed) {
    mnv2::test::FastPathSwitch on(fused);
    auto [model, x, y] = mnv2::test::small_training_step(4, seed);
    model->to(dtype);
    const auto logits = model->forward(x.to(dtype));
    torch::nn::functional::cross_entropy(logits, y).backward();
    std::vector<torch::Tensor> out{logits.detach()};
    for (const auto& p : model->parameters()) {
      out.push_back(p.grad());
    }
    for (const auto& b : model->buffers()) {
      out.push_back(b.clone());
    }
    return out;
  };
  // Float roundings, amplified by the network, move values by about 1e-4.
  // Where a value before a ReLU6 lies that close to 0 or 6, a rounding
  // moves it across and every gradient below changes by about 1%, a small
  // gradient by up to two thirds: the last BatchNorms see 8 values per
  // channel. Which seeds cross depends on every rounding in the step, the
  // host's and our kernels' order of sums alike: over seeds 5-39 on an
  // Intel Xeon with AVX-512 (2026-12-06) the fused step crossed at 8 seeds
  // and LibTorch's own fp32 step at 9, mostly not the same ones, and both
  // stayed within 6e-5-4.3e-4 at the others. With 5 seeds and the median
  // held, any change of rounding failed this test about one time in ten.
  // A mistake would show at every seed. So each seed is held to the size
  // of a crossing, and at least a third of 25 seeds to 5e-4.
  std::vector<double> worst;
  for (uint64_t seed = 5; seed < 30; ++seed) {
    const auto exact = run(false, torch::kDouble, seed);
    const auto fused = run(true, torch::kFloat, seed);
    const auto plain = run(false, torch::kFloat, seed);
    REQUIRE(fused.size() == exact.size());
    REQUIRE(plain.size() == exact.size());
    // A gradient that is only rounding noise (a projection BatchNorm's
    // bias, whose loss the next BatchNorm makes invariant to it) is
    // measured against the largest gradient instead.
    double largest = 0;
    for (const auto& t : exact) {
      largest = std::max(largest, t.abs().max().item<double>());
    }
    double seed_worst = 0, differs = 0;
    for (size_t i = 0; i < exact.size(); ++i) {
      const double scale =
          std::max(exact[i].abs().max().item<double>(), 1e-3 * largest);
      const double error =
          (fused[i].to(torch::kDouble) - exact[i]).abs().max().item<double>() /
          scale;
      CAPTURE(seed, i, fused[i].sizes(), error);
      CHECK(error < 1.0);
      seed_worst = std::max(seed_worst, error);
      differs =
          std::max(differs, (fused[i] - plain[i]).abs().max().item<double>());
    }
    CAPTURE(seed);
    CHECK(differs > 0);  // the fused kernels ran: their sums differ somewhere
    worst.push_back(seed_worst);
  }
  CAPTURE(worst);
  const size_t third = worst.size() / 3;
  std::nth_element(worst.begin(), worst.begin() + third, worst.end());
  CHECK(worst[third] < 5e-4);
}

TEST_CASE("the bf16 backward's clamp bounds equal masking the stored output",
          "[model][fused]") {
  // The backward compares the computed z with two bounds instead of
  // rounding it to bf16: the mask must be hardtanh_backward's on the
  // stored value, here rounded by c10::BFloat16, for every float near
  // either bound and for special and random ones.
  namespace loops = mnv2::fused_batchnorm_loops;
  const auto stored = [](float z) {
    return static_cast<float>(c10::BFloat16(z));
  };
  const auto next = [](float f, int steps) {
    for (int i = 0; i < std::abs(steps); ++i) {
      f = std::nextafter(f, steps > 0 ? INFINITY : -INFINITY);
    }
    return f;
  };
  for (const auto& [low, high] :
       {std::pair{0.f, 6.f}, std::pair{-INFINITY, INFINITY}}) {
    CAPTURE(low, high);
    const auto bounds = loops::stored_clamp_bounds(
        static_cast<const uint16_t*>(nullptr), low, high);
    std::vector<float> zs = {0.f,
                             -0.f,
                             6.f,
                             5.984375f,  // halfway between 6 and 5.96875
                             INFINITY,
                             -INFINITY,
                             NAN,
                             std::numeric_limits<float>::max(),
                             std::numeric_limits<float>::lowest(),
                             std::numeric_limits<float>::denorm_min()};
    for (const float around : {bounds.low, bounds.high, low, high}) {
      if (std::isfinite(around)) {
        for (int i = -70000; i <= 70000; i += 7) {
          zs.push_back(next(around, i));
        }
      }
    }
    torch::manual_seed(9);
    const auto random = torch::randn({100000}) * 8;
    for (int64_t i = 0; i < random.numel(); ++i) {
      zs.push_back(random[i].item<float>());
    }
    int64_t wrong = 0;
    for (const float z : zs) {
      const bool expected = stored(z) > low && stored(z) < high;
      wrong += (z > bounds.low && z < bounds.high) != expected;
    }
    CHECK(wrong == 0);
  }
}
