// The 1x1 convolution as a matrix product against LibTorch's convolution:
// values and both gradients, fp32 and bf16, and where it applies.
#include "test_support.h"

#include "fp32_products_guard.h"

#include <mobilenetv2/nn/pointwise_conv.h>
#include <mobilenetv2/util/autocast_guard.h>
#include <mobilenetv2/util/cpu_features.h>

#include <catch2/catch.hpp>

#include <cstdlib>
#include <fstream>
#include <string>

namespace {

using mnv2::test::relative_error;

// One bf16 step of the largest value: 7 stored bits, up to 2^-7 of it.
constexpr double kPointwiseBf16Step = 1.0 / 128;

struct PointwiseShape {
  int64_t images, in, out, h, w;
};

// A random channels-last input of `s`, its weight and upstream gradient.
struct PointwiseValues {
  torch::Tensor x, weight, upstream;
};
PointwiseValues pointwise_values(const PointwiseShape& s, uint64_t seed) {
  torch::manual_seed(seed);
  return {torch::randn({s.images, s.in, s.h, s.w})
              .contiguous(torch::MemoryFormat::ChannelsLast),
          torch::randn({s.out, s.in, 1, 1}),
          torch::randn({s.images, s.out, s.h, s.w})};
}

// The output and the input and weight gradients of `conv` on copies of
// `v`'s input (in `dtype`) and weight, for `v`'s upstream gradient.
template <class Conv>
std::vector<torch::Tensor> conv_and_gradients(const PointwiseValues& v,
                                              torch::ScalarType dtype,
                                              const Conv& conv) {
  const auto x = v.x.to(dtype).requires_grad_(true);
  const auto weight = v.weight.clone().requires_grad_(true);
  const auto output = conv(x, weight);
  (output.to(torch::kFloat) * v.upstream).sum().backward();
  return {output, x.grad(), weight.grad()};
}

}  // namespace

TEST_CASE("the pointwise convolution equals LibTorch's in fp32",
          "[model][fused]") {
  mnv2::test::with_each_fp32_products([&] {
    // Odd sizes and channel counts, a 1x1 map, one image.
    for (const auto& s : {PointwiseShape{3, 13, 7, 5, 3},
                          PointwiseShape{2, 8, 48, 9, 9},
                          PointwiseShape{5, 40, 24, 1, 1},
                          PointwiseShape{1, 96, 16, 6, 7}}) {
      CAPTURE(s.images, s.in, s.out, s.h, s.w);
      const auto values = pointwise_values(s, 3);
      const auto ours = conv_and_gradients(
          values, torch::kFloat, [](const auto& x, const auto& w) {
            return mnv2::pointwise_conv2d(x, w);
          });
      const auto libtorch = conv_and_gradients(
          values, torch::kFloat, [](const auto& x, const auto& w) {
            return torch::conv2d(x, w);
          });
      CHECK(ours[0].is_contiguous(torch::MemoryFormat::ChannelsLast));
      CHECK(ours[0].sizes() == libtorch[0].sizes());
      for (size_t i = 0; i < ours.size(); ++i) {
        CAPTURE(i);  // output, input gradient, weight gradient
        CHECK(ours[i].scalar_type() == torch::kFloat);
        CHECK(relative_error(ours[i], libtorch[i]) <= 1e-5);
      }
    }
  });
}

TEST_CASE("the pointwise convolution takes a channel slice of a tensor",
          "[model][fused]") {
  mnv2::test::with_each_fp32_products([&] {
    // Its pixels' channels are 24 apart, not 16: no dense matrix of rows.
    torch::manual_seed(5);
    const auto whole = torch::randn({2, 24, 9, 9})
                           .contiguous(torch::MemoryFormat::ChannelsLast);
    const auto x = whole.narrow(1, 4, 16).requires_grad_(true);
    const auto weight = torch::randn({8, 16, 1, 1}).requires_grad_(true);
    const auto upstream = torch::randn({2, 8, 9, 9});
    const auto output = mnv2::pointwise_conv2d(x, weight);
    const auto grads = torch::autograd::grad({output}, {x, weight}, {upstream});
    const auto x64 = x.detach().to(torch::kDouble).requires_grad_(true);
    const auto w64 = weight.detach().to(torch::kDouble).requires_grad_(true);
    const auto expected = torch::conv2d(x64, w64);
    const auto expected_grads = torch::autograd::grad(
        {expected}, {x64, w64}, {upstream.to(torch::kDouble)});
    CHECK(relative_error(output, expected) <= 1e-5);
    CHECK(relative_error(grads[0], expected_grads[0]) <= 1e-5);
    CHECK(relative_error(grads[1], expected_grads[1]) <= 1e-5);
  });
}

TEST_CASE("the pointwise convolution equals LibTorch's in bf16",
          "[model][fused]") {
  // bf16 input, and fp32 input under bf16 autocast: both compute in bf16.
  const PointwiseShape s{4, 24, 40, 5, 7};
  const auto values = pointwise_values(s, 4);
  for (const bool autocast : {false, true}) {
    CAPTURE(autocast);
    const auto dtype = autocast ? torch::kFloat : torch::kBFloat16;
    mnv2::AutocastGuard guard(torch::kCPU, torch::kBFloat16, autocast);
    REQUIRE(mnv2::pointwise_conv2d_applies(values.x.to(dtype), s.out, 1, 1, 1));
    const auto ours =
        conv_and_gradients(values, dtype, [](const auto& x, const auto& w) {
          return mnv2::pointwise_conv2d(x, w);
        });
    const auto libtorch =
        conv_and_gradients(values, dtype, [](const auto& x, const auto& w) {
          return torch::conv2d(x.to(torch::kBFloat16), w.to(torch::kBFloat16));
        });
    CHECK(ours[0].scalar_type() == torch::kBFloat16);
    CHECK(ours[1].scalar_type() == dtype);
    CHECK(ours[2].scalar_type() == torch::kFloat);
    // Both round their sums to bf16 once, perhaps to neighbouring values.
    for (size_t i = 0; i < ours.size(); ++i) {
      CAPTURE(i);
      CHECK(relative_error(ours[i], libtorch[i]) <= kPointwiseBf16Step);
    }
  }
}

TEST_CASE("the pointwise convolution applies where its products are fast",
          "[model][fused]") {
  const auto cl = [](torch::Tensor t) {
    return t.contiguous(torch::MemoryFormat::ChannelsLast);
  };
  const auto x = cl(torch::randn({2, 8, 9, 9}));
  // Which products fp32 takes depends on the vendor: as the kernel reports
  // it.
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line) && line.rfind("vendor_id", 0) != 0) {
  }
  if (!line.empty()) {
    CHECK(mnv2::cpu_is_intel() ==
          (line.find("GenuineIntel") != std::string::npos));
  }
  // fp32 takes the products where they are MKL's: all layers up to 2^16
  // pixels on an Intel CPU, the smallest elsewhere.
  const auto fp32 = mnv2::pointwise_limits_fp32();
  const bool mkl = at::globalContext().hasMKL();
  const bool intel = mkl && mnv2::cpu_is_intel();
  CHECK(fp32.max_pixels == (intel ? 1 << 16 : mkl ? 1 << 12 : 0));
  CHECK(fp32.max_multiply_adds == (intel ? INT64_MAX
                                   : mkl ? int64_t{1} << 26
                                         : 0));
  // cpu_has_avx512() follows the kernel's flags where no cap in the
  // environment holds LibTorch below them.
  if (std::getenv("ONEDNN_MAX_CPU_ISA") == nullptr &&
      std::getenv("ATEN_CPU_CAPABILITY") == nullptr) {
    std::ifstream flags_file("/proc/cpuinfo");
    std::string flags;
    while (std::getline(flags_file, flags) && flags.rfind("flags", 0) != 0) {
    }
    if (!flags.empty()) {
      const auto has = [&](const std::string& flag) {
        return (flags + " ").find(" " + flag + " ") != std::string::npos;
      };
      CHECK(mnv2::cpu_has_avx512() == (has("avx512f") && has("avx512bw") &&
                                       has("avx512dq") && has("avx512vl")));
    }
  }
  // On every CPU, with AVX-512 or not, fp32 1x1s whose channel counts are
  // multiples of 8, one of them at most 32, take our own products at any
  // size.
  CHECK(mnv2::pointwise_own_products_fp32(8, 16));
  CHECK(mnv2::pointwise_own_products_fp32(144, 32));
  CHECK(mnv2::pointwise_own_products_fp32(24, 144));
  CHECK_FALSE(mnv2::pointwise_own_products_fp32(144, 40));
  CHECK_FALSE(mnv2::pointwise_own_products_fp32(12, 16));
  CHECK(mnv2::pointwise_conv2d_applies(
      cl(torch::empty({32, 144, 56, 56})), 24, 1, 1, 1));
  CHECK(mnv2::pointwise_conv2d_applies(x, 16, 1, 1, 1));
  CHECK_FALSE(mnv2::pointwise_conv2d_applies(x.contiguous(), 16, 1, 1, 1));
  CHECK_FALSE(mnv2::pointwise_conv2d_applies(x, 8, 8, 1, 1));  // depthwise
  CHECK_FALSE(mnv2::pointwise_conv2d_applies(x, 16, 1, 3, 1));
  CHECK_FALSE(mnv2::pointwise_conv2d_applies(x, 16, 1, 1, 2));
  CHECK_FALSE(mnv2::pointwise_conv2d_applies(x.to(torch::kHalf), 16, 1, 1, 1));
  CHECK(mnv2::pointwise_conv2d_applies(x.to(torch::kBFloat16), 16, 1, 1, 1));
  {
    torch::NoGradGuard inference;
    CHECK_FALSE(mnv2::pointwise_conv2d_applies(x, 16, 1, 1, 1));
  }
  {
    mnv2::AutocastGuard autocast(torch::kCPU, torch::kHalf, true);
    CHECK_FALSE(mnv2::pointwise_conv2d_applies(x, 16, 1, 1, 1));
  }
  // The pixel limits: 4 x 128 x 128 = 2^16 (4 x 32 x 32 = 2^12 on other
  // CPUs), and 2^14 in bf16.
  const auto side = intel ? 128 : 32;
  const auto at_limit = cl(torch::empty({4, 2, side, side}));
  const auto over_limit = cl(torch::empty({4, 2, side, side + 1}));
  CHECK(mnv2::pointwise_conv2d_applies(at_limit, 2, 1, 1, 1) == mkl);
  CHECK_FALSE(mnv2::pointwise_conv2d_applies(over_limit, 2, 1, 1, 1));
  if (mkl && !intel) {
    // 2^26 multiply-adds: 4096 pixels x 128 x 128 channels.
    const auto wide = cl(torch::empty({4, 128, 32, 32}));
    CHECK(mnv2::pointwise_conv2d_applies(wide, 128, 1, 1, 1));
    CHECK_FALSE(mnv2::pointwise_conv2d_applies(wide, 129, 1, 1, 1));
  }
  const auto bf16_at_limit =
      cl(torch::empty({1, 2, 128, 128}, torch::kBFloat16));
  const auto bf16_over_limit =
      cl(torch::empty({1, 2, 128, 129}, torch::kBFloat16));
  CHECK(mnv2::pointwise_conv2d_applies(bf16_at_limit, 2, 1, 1, 1));
  CHECK_FALSE(mnv2::pointwise_conv2d_applies(bf16_over_limit, 2, 1, 1, 1));
  {
    mnv2::AutocastGuard autocast(torch::kCPU, torch::kBFloat16, true);
    CHECK(mnv2::pointwise_conv2d_applies(x, 16, 1, 1, 1));
    CHECK_FALSE(mnv2::pointwise_conv2d_applies(
        cl(torch::empty({1, 2, 128, 129})), 2, 1, 1, 1));
  }
}
