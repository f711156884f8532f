// A bf16 training step (autocast) with the fast kernels (fused BatchNorm +
// ReLU6 in bf16, the depthwise input gradients) against LibTorch's own bf16
// step, both measured against LibTorch's fp32 step: ours must be as close
// to fp32 as LibTorch's is. Comparing the two bf16 steps with each other
// only held while our bf16 forward equalled LibTorch's bit for bit; a sum
// in another order (ours, or another LibTorch's) moves a random-initialised
// network's gradient far (see below).
#include "test_support.h"

#include <mobilenetv2/nn/fused_batchnorm.h>
#include <mobilenetv2/nn/inverted_residual.h>
#include <mobilenetv2/nn/mobilenet_v2.h>
#include <mobilenetv2/util/autocast_guard.h>
#include <mobilenetv2/util/memory_format.h>

#include <catch2/catch.hpp>

namespace bf16_step_test {

// One bf16 step of the largest value: 7 stored bits, up to 2^-7 of it.
constexpr double kStep = 1.0 / 128;

enum class Arithmetic { kFastBf16, kLibTorchBf16, kLibTorchFp32 };

// Each gradient's distance to the fp32 one, over that one's norm (or a
// thousandth of the largest gradient's, for a gradient the network makes
// all but zero: an expansion BatchNorm's weight, which the next BatchNorm
// normalises away).
std::vector<double> distances(const std::vector<torch::Tensor>& grads,
                              const std::vector<torch::Tensor>& fp32) {
  double largest = 0;
  for (const auto& g : fp32) {
    largest = std::max(largest, g.norm().item<double>());
  }
  std::vector<double> out;
  for (size_t i = 0; i < grads.size(); ++i) {
    const auto g = grads[i].to(torch::kDouble);
    const auto r = fp32[i].to(torch::kDouble);
    out.push_back((g - r).norm().item<double>() /
                  std::max(r.norm().item<double>(), 1e-3 * largest));
  }
  return out;
}

double cosine(const torch::Tensor& a, const torch::Tensor& b) {
  const auto a64 = a.flatten().to(torch::kDouble);
  const auto b64 = b.flatten().to(torch::kDouble);
  return ((a64 * b64).sum() / (a64.norm() * b64.norm())).item<double>();
}

}  // namespace bf16_step_test

TEST_CASE("a bf16 block step with the fast kernels is as exact as LibTorch's",
          "[model][fused]") {
  // Residual, strided and unexpanded blocks, odd sizes, channels last. In
  // one block a bf16 step stays within about 10% of fp32's gradients
  // (LibTorch's own, measured here), so a wrong gradient shows far above it.
  using bf16_step_test::Arithmetic;
  for (const auto& [in, out, stride, expand] :
       std::vector<std::array<int64_t, 4>>{
           {16, 16, 1, 6}, {16, 24, 2, 6}, {32, 16, 1, 1}, {24, 24, 1, 6}}) {
    CAPTURE(in, out, stride, expand);
    const auto run = [&](Arithmetic arithmetic) {
      mnv2::test::FastPathSwitch fast(arithmetic == Arithmetic::kFastBf16);
      torch::manual_seed(5);
      mnv2::InvertedResidual block(
          mnv2::InvertedResidualOptions(in, out, stride, expand));
      mnv2::use_channels_last(*block);
      block->train();
      const auto x = torch::randn({8, in, 29, 23})
                         .contiguous(torch::MemoryFormat::ChannelsLast)
                         .requires_grad_(true);
      torch::Tensor y;
      {
        mnv2::AutocastGuard autocast(torch::kCPU,
                                     torch::kBFloat16,
                                     arithmetic != Arithmetic::kLibTorchFp32);
        y = block->forward(x);
      }
      (y.to(torch::kFloat) * torch::randn(y.sizes())).sum().backward();
      std::vector<torch::Tensor> grads{x.grad()};
      for (const auto& p : block->parameters()) {
        grads.push_back(p.grad());
      }
      return grads;
    };
    const auto fast = run(Arithmetic::kFastBf16);
    const auto libtorch = run(Arithmetic::kLibTorchBf16);
    const auto fp32 = run(Arithmetic::kLibTorchFp32);
    const auto ours = bf16_step_test::distances(fast, fp32);
    const auto theirs = bf16_step_test::distances(libtorch, fp32);
    for (size_t i = 0; i < ours.size(); ++i) {
      CAPTURE(i, ours[i], theirs[i]);
      CHECK(ours[i] <= 2 * theirs[i] + bf16_step_test::kStep);
    }
    CHECK(fast.front().scalar_type() == torch::kFloat);
    CHECK_FALSE(torch::equal(fast.front(), libtorch.front()));  // ours ran
  }
}

TEST_CASE("a bf16 network step with the fast kernels is as exact as LibTorch's",
          "[model][fused]") {
  // The whole network under autocast. From random weights, bf16 roundings
  // grow through 52 layers of BatchNorm backward (which subtracts nearly
  // equal sums): LibTorch's own bf16 gradient is at a cosine of 0.3-0.5 to
  // its fp32 one in the first layers (measured at several sizes and
  // widths). What stays exact enough to test is the loss and the last
  // layer's gradient; the blocks are tested one by one above.
  using bf16_step_test::Arithmetic;
  const auto run = [](Arithmetic arithmetic) {
    mnv2::test::FastPathSwitch fast(arithmetic == Arithmetic::kFastBf16);
    auto [model, x, y] = mnv2::test::small_training_step(8);
    torch::Tensor loss;
    {
      mnv2::AutocastGuard autocast(torch::kCPU,
                                   torch::kBFloat16,
                                   arithmetic != Arithmetic::kLibTorchFp32);
      loss = torch::nn::functional::cross_entropy(model->forward(x), y);
    }
    loss.backward();
    std::vector<torch::Tensor> grads;
    for (const auto& p : model->parameters()) {
      grads.push_back(p.grad());
    }
    return std::make_pair(loss.item<double>(), grads);
  };
  const auto [fast_loss, fast] = run(Arithmetic::kFastBf16);
  const auto [libtorch_loss, libtorch] = run(Arithmetic::kLibTorchBf16);
  const auto [fp32_loss, fp32] = run(Arithmetic::kLibTorchFp32);
  CAPTURE(fast_loss, libtorch_loss, fp32_loss);
  CHECK(std::abs(fast_loss - fp32_loss) <=
        2 * std::abs(libtorch_loss - fp32_loss) +
            2 * bf16_step_test::kStep * fp32_loss);
  // The classifier's weight gradient (second to last parameter).
  const auto last = fast.size() - 2;
  REQUIRE(fast[last].sizes() == torch::IntArrayRef({7, 1280}));
  const double ours = bf16_step_test::cosine(fast[last], fp32[last]);
  const double theirs = bf16_step_test::cosine(libtorch[last], fp32[last]);
  CAPTURE(ours, theirs);
  CHECK(ours >= theirs - 0.05);
  for (const auto& g : fast) {
    CHECK(g.scalar_type() == torch::kFloat);
    CHECK(torch::isfinite(g).all().item<bool>());
  }
  bool differs = false;  // the fast kernels ran: their sums differ somewhere
  for (size_t i = 0; i < fast.size(); ++i) {
    differs = differs || !torch::equal(fast[i], libtorch[i]);
  }
  CHECK(differs);
}
