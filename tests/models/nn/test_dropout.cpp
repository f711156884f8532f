// The classifier's dropout with its mask drawn in parallel, against
// torch::dropout's scale and switch-off behaviour and the binomial bounds of
// its own draws.
#include "test_support.h"

#include <mobilenetv2/nn/dropout.h>
#include <mobilenetv2/nn/mobilenet_v2.h>

#include <ATen/Parallel.h>
#include <catch2/catch.hpp>

#include <cmath>
#include <sstream>

namespace {

// Five standard deviations of a fraction of n Bernoulli(q) draws.
double five_sigma(double q, int64_t n) {
  return 5 * std::sqrt(q * (1 - q) / static_cast<double>(n));
}

}  // namespace

TEST_CASE("our dropout zeroes values with probability p, scales the rest",
          "[model][fused]") {
  const int64_t n = 1 << 20;
  for (const double p : {0.1, 0.2, 0.5}) {
    CAPTURE(p);
    const auto ones = torch::ones({n / 1024, 1024});
    const auto ours = mnv2::parallel_dropout(ones, p, /*training=*/true);
    // torch::dropout's scale, read off its kept values.
    const auto scale = torch::dropout(ones, p, true).max();
    const auto kept = ours.ne(0);
    CHECK(torch::equal(ours.masked_select(kept),
                       scale.expand({kept.sum().item<int64_t>()})));
    const double dropped = 1 - kept.to(torch::kDouble).mean().item<double>();
    CHECK(std::abs(dropped - p) < five_sigma(p, n));
    // Neighbours draw independently: both kept with probability (1 - p)^2.
    const auto flat = kept.flatten();
    const double both = (flat.slice(0, 0, n - 1) & flat.slice(0, 1, n))
                            .to(torch::kDouble)
                            .mean()
                            .item<double>();
    CHECK(std::abs(both - (1 - p) * (1 - p)) <
          five_sigma((1 - p) * (1 - p), n - 1));
  }
  // bf16 values keep their dtype, and the same mask shape.
  const auto bf16 = torch::ones({64, 1280}, torch::kBFloat16);
  const auto out = mnv2::parallel_dropout(bf16, 0.2, true);
  CHECK(out.scalar_type() == torch::kBFloat16);
  CHECK(torch::equal(out.masked_select(out.ne(0)).to(torch::kFloat),
                     torch::full({out.ne(0).sum().item<int64_t>()}, 1.25f)));
}

TEST_CASE("our dropout's gradient is its mask", "[model][fused]") {
  auto x = torch::randn({32, 1280}).add_(10).requires_grad_();  // no zeros
  const double p = 0.3;
  const auto y = mnv2::parallel_dropout(x, p, true);
  y.sum().backward();
  const auto scale = 1.f / static_cast<float>(1 - p);
  CHECK(torch::equal(x.grad(), y.detach().ne(0).to(torch::kFloat) * scale));
}

TEST_CASE("our dropout follows torch::manual_seed, not the thread count",
          "[model][fused]") {
  const auto x = torch::randn({64, 1280});
  const int threads = at::get_num_threads();
  torch::manual_seed(3);
  const auto first = mnv2::parallel_dropout(x, 0.2, true);
  const auto second = mnv2::parallel_dropout(x, 0.2, true);
  CHECK_FALSE(torch::equal(first, second));
  at::set_num_threads(1);
  torch::manual_seed(3);
  const auto one_thread = mnv2::parallel_dropout(x, 0.2, true);
  at::set_num_threads(threads);
  CHECK(torch::equal(first, one_thread));
}

TEST_CASE("our dropout is the identity outside training, torch's when off",
          "[model][fused]") {
  const auto x = torch::randn({16, 1280});
  CHECK(mnv2::parallel_dropout(x, 0.2, false).is_same(x));
  CHECK(mnv2::parallel_dropout(x, 0.0, true).is_same(x));
  {
    mnv2::test::FastPathSwitch off(false);
    torch::manual_seed(4);
    const auto ours = mnv2::parallel_dropout(x, 0.2, true);
    torch::manual_seed(4);
    CHECK(torch::equal(ours, torch::dropout(x, 0.2, true)));
  }
  // In the classifier: no parameters of its own, so a state_dict keeps
  // torchvision's keys (classifier.1.weight, classifier.1.bias).
  mnv2::MobileNetV2 model(mnv2::MobileNetV2Options().num_classes(10));
  const auto named = model->classifier->named_parameters();
  CHECK(named.contains("1.weight"));
  CHECK(named.size() == 2);
  std::ostringstream printed;
  printed << *model->classifier;
  CHECK_THAT(printed.str(), Catch::Contains("mnv2::Dropout(p=0.2)"));
}
