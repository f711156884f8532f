#include "test_support.h"

#include <mobilenetv2/nn/conv_bn_activation.h>
#include <mobilenetv2/nn/make_divisible.h>
#include <mobilenetv2/nn/mobilenet_v2.h>
#include <mobilenetv2/torch_files/state_dict.h>
#include <mobilenetv2/util/counting.h>

#include <catch2/catch.hpp>

#include <cmath>

using mnv2::MobileNetV2;
using mnv2::MobileNetV2Options;

TEST_CASE("make_divisible follows torchvision's rounding", "[model]") {
  // Hand-computed from torchvision's _make_divisible.
  CHECK(mnv2::make_divisible(32 * 0.35, 8) == 16);  // 8 < 0.9 * 11.2: bump
  CHECK(mnv2::make_divisible(96 * 0.35, 8) == 32);
  CHECK(mnv2::make_divisible(24 * 0.5, 8) == 16);  // 12 rounds half up
  CHECK(mnv2::make_divisible(160 * 0.75, 8) == 120);
  CHECK(mnv2::make_divisible(1280 * 1.4, 8) == 1792);
  CHECK(mnv2::make_divisible(16 * 0.35, 8) == 8);  // min_value
  CHECK(mnv2::make_divisible(3, 8, 1) == 9);       // 1 < 0.9 * 3: bump to 1 + 8
}

TEST_CASE("the 1.0 model has torchvision's 3,504,872 parameters", "[model]") {
  MobileNetV2 model;
  CHECK(mnv2::count_parameters(*model) == 3504872);
  const auto state = mnv2::state_dict_of(*model);
  CHECK(state.size() == 314);  // len(torchvision mobilenet_v2().state_dict())
  CHECK(state.keys().front() == "features.0.0.weight");
  CHECK(state.keys().back() == "classifier.1.bias");
  CHECK(state.contains("features.1.conv.0.0.weight"));  // t = 1: no expand
  CHECK(state.contains("features.2.conv.0.0.weight"));  // expand 1x1
  CHECK(state.contains("features.2.conv.3.running_var"));
  CHECK(state.contains("features.18.1.num_batches_tracked"));
  CHECK(model->last_channel() == 1280);
}

TEST_CASE("about 300M multiply-adds at 224", "[model]") {
  MobileNetV2 model;
  const auto macs = mnv2::count_multiply_adds(*model, 224, 224);
  CHECK(macs > 295'000'000);
  CHECK(macs < 305'000'000);
}

TEST_CASE("residual connections only where stride 1 keeps the channels",
          "[model]") {
  MobileNetV2 model;
  // Block layout of the paper's table: stage starts never add the input.
  const std::vector<bool> expected = {false,
                                      false,
                                      true,
                                      false,
                                      true,
                                      true,
                                      false,
                                      true,
                                      true,
                                      true,
                                      false,
                                      true,
                                      true,
                                      false,
                                      true,
                                      true,
                                      false};
  for (size_t i = 0; i < expected.size(); ++i) {
    auto* block = model->features->ptr(i + 1)->as<mnv2::InvertedResidualImpl>();
    REQUIRE(block != nullptr);
    CHECK(block->uses_residual() == expected[i]);
  }
}

TEST_CASE("weight initialisation follows torchvision", "[model]") {
  torch::manual_seed(1);
  MobileNetV2 model;
  for (const auto& module : model->modules()) {
    if (auto* conv = module->as<torch::nn::Conv2d>()) {
      const auto& o = conv->options;
      // kaiming_normal_(mode="fan_out"), gain sqrt(2): std = sqrt(2/fan_out)
      const double expected = std::sqrt(
          2.0 / static_cast<double>(o.out_channels() * (*o.kernel_size())[0] *
                                    (*o.kernel_size())[1]));
      if (conv->weight.numel() >= 20000) {
        CHECK(conv->weight.std().item<double>() ==
              Approx(expected).epsilon(0.05));
        CHECK(std::abs(conv->weight.mean().item<double>()) < expected * 0.05);
      }
    } else if (auto* bn = module->as<torch::nn::BatchNorm2d>()) {
      CHECK(torch::all(bn->weight == 1).item<bool>());
      CHECK(torch::all(bn->bias == 0).item<bool>());
      CHECK(bn->options.eps() == 1e-5);
      CHECK(bn->options.momentum().value() == 0.1);
    } else if (auto* linear = module->as<torch::nn::Linear>()) {
      CHECK(linear->weight.std().item<double>() == Approx(0.01).epsilon(0.02));
      CHECK(torch::all(linear->bias == 0).item<bool>());
    }
  }
}

TEST_CASE("output and feature-map shapes from 32 to 320", "[model]") {
  MobileNetV2 model(MobileNetV2Options().num_classes(10));
  model->eval();
  torch::NoGradGuard no_grad;
  CHECK(model->feature_map_channels() ==
        std::vector<int64_t>{24, 32, 96, 1280});
  for (int64_t size : {32, 33, 64, 97, 127, 160, 224, 255, 320}) {
    INFO("input size " << size);
    const auto x = torch::randn({2, 3, size, size + 7});
    CHECK(model->forward(x).sizes() == torch::IntArrayRef({2, 10}));
    CHECK(model->forward_embedding(x).sizes() == torch::IntArrayRef({2, 1280}));
    const auto maps = model->forward_feature_maps(x);
    REQUIRE(maps.size() == 4);
    const std::vector<int64_t> strides = {4, 8, 16, 32};
    const auto channels = model->feature_map_channels();
    for (size_t i = 0; i < maps.size(); ++i) {
      CHECK(maps[i].stride == strides[i]);
      // Each stride-2 layer with padding 1 maps n to ceil(n / 2).
      int64_t h = size, w = size + 7;
      for (int64_t s = 1; s < strides[i]; s *= 2) {
        h = (h + 1) / 2;
        w = (w + 1) / 2;
      }
      CHECK(maps[i].tensor.sizes() ==
            torch::IntArrayRef({2, channels[i], h, w}));
    }
  }
}

TEST_CASE("width multipliers scale the channels", "[model]") {
  MobileNetV2 narrow(MobileNetV2Options().width_mult(0.5).num_classes(3));
  CHECK(narrow->last_channel() == 1280);  // never below 1280
  CHECK(narrow->feature_map_channels() ==
        std::vector<int64_t>{16, 16, 48, 1280});
  MobileNetV2 wide(MobileNetV2Options().width_mult(1.4));
  CHECK(wide->last_channel() == 1792);
}

TEST_CASE("a wrong input shape is a clear error", "[model]") {
  MobileNetV2 model;
  model->eval();
  CHECK_THROWS_WITH(model->forward(torch::zeros({1, 1, 64, 64})),
                    Catch::Contains("expects an input of shape [N, 3, H, W]"));
  CHECK_THROWS_WITH(model->forward(torch::zeros({3, 64, 64})),
                    Catch::Contains("expects an input of shape [N, 3, H, W]"));
  CHECK_THROWS_WITH(
      MobileNetV2(MobileNetV2Options().inverted_residual_setting({})),
      Catch::Contains("must not be empty"));
  CHECK_THROWS_WITH(MobileNetV2(MobileNetV2Options().num_classes(0)),
                    Catch::Contains("num_classes must be positive"));
}

TEST_CASE("reset_classifier gives a fresh head for another class count",
          "[model]") {
  MobileNetV2 model;
  const auto before = model->features->parameters().front().clone();
  model->reset_classifier(5);
  model->eval();
  CHECK(model->forward(torch::zeros({1, 3, 64, 64})).size(1) == 5);
  CHECK(torch::equal(model->features->parameters().front(), before));
  CHECK(mnv2::state_dict_of(*model).contains("classifier.1.weight"));
}

TEST_CASE("custom settings and BN options reach every layer", "[model]") {
  auto options = MobileNetV2Options()
                     .inverted_residual_setting({{1, 16, 1, 1}, {4, 24, 2, 2}})
                     .bn_eps(1e-3)
                     .bn_momentum(0.01)
                     .num_classes(4);
  MobileNetV2 model(options);
  int bn_count = 0;
  for (const auto& module : model->modules()) {
    if (auto* bn = module->as<torch::nn::BatchNorm2d>()) {
      CHECK(bn->options.eps() == 1e-3);
      CHECK(bn->options.momentum().value() == 0.01);
      ++bn_count;
    }
  }
  CHECK(bn_count == 1 + 2 + 3 + 3 + 1);  // stem, t=1 block, two t=4, last
  model->eval();
  CHECK(model->forward(torch::zeros({1, 3, 64, 64})).sizes() ==
        torch::IntArrayRef({1, 4}));
}

TEST_CASE("TensorFlow SAME padding: values by hand, shapes and cost",
          "[model]") {
  using mnv2::tf_same_padding;
  // 3x3 stride 2: even sizes pad 0 before, 1 after; odd sizes 1 and 1.
  CHECK(tf_same_padding(224, 3, 2) == std::array<int64_t, 2>{0, 1});
  CHECK(tf_same_padding(225, 3, 2) == std::array<int64_t, 2>{1, 1});
  CHECK(tf_same_padding(7, 3, 1) == std::array<int64_t, 2>{1, 1});
  CHECK(tf_same_padding(8, 1, 1) == std::array<int64_t, 2>{0, 0});
  CHECK(tf_same_padding(9, 5, 3) == std::array<int64_t, 2>{1, 1});
  CHECK(mnv2::padding_from_name("tf_same") == mnv2::Padding::kTfSame);
  CHECK_THROWS(mnv2::padding_from_name("same"));

  torch::manual_seed(0);
  mnv2::MobileNetV2 same(
      mnv2::MobileNetV2Options().padding(mnv2::Padding::kTfSame));
  mnv2::MobileNetV2 symmetric;
  same->eval();
  // Same parameters and cost; the feature maps keep ceil(size / stride).
  CHECK(mnv2::count_parameters(*same) == mnv2::count_parameters(*symmetric));
  CHECK(mnv2::count_multiply_adds(*same, 224, 224) ==
        mnv2::count_multiply_adds(*symmetric, 224, 224));
  torch::NoGradGuard no_grad;
  for (int64_t size : {224, 225, 97}) {
    const auto maps =
        same->forward_feature_maps(torch::randn({1, 3, size, size}));
    const auto last = maps.back().tensor;
    CHECK(last.size(2) == (size + 31) / 32);
  }
  // The stem of a SAME model on an even size equals padding 0 before and
  // 1 after by hand, then an unpadded convolution.
  const auto x = torch::randn({1, 3, 8, 8});
  auto* stem = same->features->ptr(0)->as<mnv2::ConvBNActivationImpl>();
  auto* conv = stem->ptr(0)->as<torch::nn::Conv2dImpl>();
  const auto by_hand = torch::conv2d(
      torch::constant_pad_nd(x, {0, 1, 0, 1}), conv->weight, {}, 2);
  const auto unit = stem->forward(x);
  auto* bn = stem->ptr(1)->as<torch::nn::BatchNorm2dImpl>();
  const auto expected = torch::clamp(torch::batch_norm(by_hand,
                                                       bn->weight,
                                                       bn->bias,
                                                       bn->running_mean,
                                                       bn->running_var,
                                                       false,
                                                       0.0,
                                                       bn->options.eps(),
                                                       false),
                                     0,
                                     6);
  CHECK(torch::allclose(unit, expected, 1e-5, 1e-6));
}
