// The int8 engine (OneDnnMobileNetV2 on a QuantizedNetwork) against the
// quantized network's own LibTorch simulation; tests/oracle's integer
// simulation in Python is the independent reference (check_int8.py).
#include "test_support.h"

#include "engines/onednn/onednn_layers.h"
#include "engines/onednn/onednn_network.h"

#include <mobilenetv2/engines/onednn/onednn_mobilenet_v2.h>
#include <mobilenetv2/engines/plain_network.h>
#include <mobilenetv2/nn/folded_network.h>
#include <mobilenetv2/quantization/qat.h>
#include <mobilenetv2/quantization/quantize.h>

#include <mobilenetv2/util/cpu_features.h>

#include <omp.h>
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <thread>
#include <vector>

namespace {

mnv2::QuantizedNetwork quantized_model(
    const mnv2::MobileNetV2Options& options) {
  torch::manual_seed(5);
  mnv2::MobileNetV2 model(options);
  mnv2::test::randomise_batchnorm(model);
  model->eval();
  // Calibrated on images of the scale the tests feed.
  std::vector<torch::Tensor> batches = {torch::randn({8, 3, 64, 64}),
                                        torch::randn({8, 3, 64, 64})};
  mnv2::QuantizeOptions q;
  q.input_max_abs = 4;
  return mnv2::quantize_network(mnv2::fold_batchnorm(model), batches, q);
}

torch::Tensor in_memory_format(const torch::Tensor& images,
                               bool channels_last) {
  return channels_last ? images.contiguous(torch::MemoryFormat::ChannelsLast)
                       : images;
}

// The simulation the engine is held to: its residual add rounded as this
// CPU's oneDNN kernels round it (one FMA from AVX2 on; a multiplication and
// an addition below), so that a sum on a rounding boundary cannot flip.
torch::Tensor simulated(const mnv2::QuantizedNetwork& net,
                        const torch::Tensor& images) {
  return mnv2::simulate_quantized(
      net, images, false, {}, mnv2::OneDnnMobileNetV2::int8_residual_add());
}

}  // namespace

TEST_CASE("int8 engine computes the simulated quantized network", "[int8]") {
  // The simulation convolves the codes exactly (float64) and rounds as the
  // engine does; tests/oracle/check_int8.py checks both against Python.
  // Widths whose channels are not multiples of 8 or 16, TF SAME padding,
  // odd sizes down to one pixel, both input memory formats.
  const std::vector<std::pair<std::string, mnv2::MobileNetV2Options>> models = {
      {"0.5", mnv2::MobileNetV2Options().num_classes(10).width_mult(0.5)},
      {"0.35", mnv2::MobileNetV2Options().num_classes(7).width_mult(0.35)},
      {"0.5 tf_same",
       mnv2::MobileNetV2Options()
           .num_classes(5)
           .width_mult(0.5)
           .padding(mnv2::Padding::kTfSame)
           .bn_eps(1e-3)}};
  const std::vector<std::pair<int64_t, int64_t>> shapes = {
      {4, 64}, {3, 97}, {1, 33}, {2, 1}};
  for (const auto& [name, options] : models) {
    const auto net = quantized_model(options);
    const mnv2::OneDnnMobileNetV2 engine(net);
    for (const auto& [batch, size] : shapes) {
      torch::manual_seed(batch * size);
      const auto images = torch::randn({batch, 3, size, size});
      const auto expected = simulated(net, images);
      for (const bool channels_last : {false, true}) {
        INFO(name << ": " << batch << "x" << size
                  << (channels_last ? " NHWC" : " NCHW"));
        const auto input = in_memory_format(images, channels_last);
        const auto actual = engine.forward(input);
        CHECK(mnv2::test::relative_error(actual, expected) < 1e-5);
      }
    }
  }
}

TEST_CASE("int8 engine rounds the residual add as its kernels do on this CPU",
          "[int8]") {
  // oneDNN's sum post-op is one fused multiply-add in its AVX2 and AVX-512
  // kernels and a product rounded before the addition in its SSE4.1 ones
  // (a CPU without AVX2; engines.isa_SSE41 runs this test there). The two
  // give different codes only where a sum lies within an fp32 step of a
  // rounding boundary (one image in 300 of a digits model), and random
  // networks rarely meet one. Here the first residual block's projection is
  // zero and its output step the block input's, so that each sum is its
  // bias plus an input code times that step; biases a few fp32 steps off
  // half a code are tried until the two roundings give different logits.
  // Only the rounding the engine's kernels use then passes.
  auto net = quantized_model(
      mnv2::MobileNetV2Options().num_classes(10).width_mult(0.5));
  size_t n = 0;
  torch::Tensor bias;
  float step = 0;
  for (auto& block : net.network.blocks) {
    if (block.residual) {
      step = static_cast<float>(net.convs[n - 1].output_scale);
      auto& projection = net.convs[n + block.convs.size() - 1];
      projection.codes.zero_();
      projection.output_scale = step;
      bias = block.convs.back().bias;
      break;
    }
    n += block.convs.size();
  }
  REQUIRE(bias.defined());
  const auto ours = mnv2::OneDnnMobileNetV2::int8_residual_add();
  const auto other = ours == mnv2::ResidualAdd::kFusedMultiplyAdd
                         ? mnv2::ResidualAdd::kMultiplyThenAdd
                         : mnv2::ResidualAdd::kFusedMultiplyAdd;
  torch::manual_seed(21);
  const auto images = torch::randn({2, 3, 64, 64});
  torch::Tensor expected, wrong;
  const auto channels = torch::arange(bias.size(0), torch::kDouble);
  for (int trial = 0; trial < 64; ++trial) {
    bias.copy_(
        (0.5 + (channels + trial * bias.size(0)) * std::ldexp(1.0, -22)) *
        step);
    expected = mnv2::simulate_quantized(net, images, false, {}, ours);
    wrong = mnv2::simulate_quantized(net, images, false, {}, other);
    if (mnv2::test::relative_error(wrong, expected) > 1e-3) {
      break;
    }
  }
  REQUIRE(mnv2::test::relative_error(wrong, expected) > 1e-3);
  const auto actual = mnv2::OneDnnMobileNetV2(net).forward(images);
  CHECK(mnv2::test::relative_error(actual, expected) < 1e-5);
  CHECK(mnv2::test::relative_error(actual, wrong) > 1e-3);
}

TEST_CASE("int8 engine keeps signed codes as s8 or as shifted u8 alike",
          "[int8]") {
  // Outputs without ReLU6 are s8 codes where oneDNN's AMX kernels run and
  // u8 codes offset by 128 elsewhere, both rounded as the offset u8 codes
  // (onednn_layers.h). Both forms on this CPU, whichever it is, and the
  // variable's refusal of a third.
  const auto net = quantized_model(
      mnv2::MobileNetV2Options().num_classes(10).width_mult(0.5));
  struct Restore {
    ~Restore() {
      ::unsetenv("MNV2_ONEDNN_SIGNED_CODES");
    }
  } restore;
  std::vector<torch::Tensor> outputs;
  // Ties that the two roundings break apart are rare (about 1 in 10^5
  // codes): enough pixels to meet some.
  torch::manual_seed(11);
  const auto images = torch::randn({5, 3, 97, 97});
  const auto expected = simulated(net, images);
  for (const char* form : {"s8", "shifted-u8"}) {
    INFO(form);
    ::setenv("MNV2_ONEDNN_SIGNED_CODES", form, 1);
    const mnv2::OneDnnMobileNetV2 engine(net);
    outputs.push_back(engine.forward(images));
    CHECK(mnv2::test::relative_error(outputs.back(), expected) < 1e-5);
    CHECK(mnv2::test::relative_error(engine.forward(images.slice(0, 1, 2)),
                                     expected.slice(0, 1, 2)) < 1e-5);
  }
  CHECK(torch::equal(outputs[0], outputs[1]));
  ::setenv("MNV2_ONEDNN_SIGNED_CODES", "u8", 1);
  CHECK_THROWS_WITH(mnv2::OneDnnMobileNetV2(net),
                    Catch::Contains("MNV2_ONEDNN_SIGNED_CODES='u8'"));
}

TEST_CASE(
    "int8 engine puts AMX kernels where they pay and s8 codes before them",
    "[int8]") {
  // onednn_layers::Int8Kernels: AMX runs the layers with at least 64 input
  // channels, where AMX is present and not capped; the others read signed
  // codes as shifted u8. So an s8 source is read only by AMX kernels and by
  // the first layer (the image's codes). Width 1.0 has expansions on 16, 24
  // and 32 channels and layers on up to 960.
  const auto net = quantized_model(
      mnv2::MobileNetV2Options().num_classes(10).width_mult(1.0));
  const mnv2::OneDnnNetwork engine(mnv2::to_plain_network(net));
  const auto steps = engine.steps({1, 3, 64, 64}, true);
  int convolutions = 0, on_amx = 0;
  for (const auto& step : steps) {
    if (step.kind != "convolution") {
      continue;
    }
    INFO("layer " << convolutions << ": " << step.implementation << " on "
                  << step.input_channels << " channels"
                  << (step.unsigned_source ? " (u8)" : " (s8)"));
    const bool amx = step.implementation.find("amx") != std::string::npos;
    on_amx += amx ? 1 : 0;
    if (amx) {
      CHECK(step.input_channels >= 64);
    } else if (convolutions > 0) {
      CHECK(step.unsigned_source);
    }
    ++convolutions;
  }
  CHECK(convolutions == 52);
  if (mnv2::cpu_has_amx_bf16()) {
    // The 1x1 layers on 64 or more channels (29 here), but for the residual
    // sums into the 24- and 32-channel blocks' shifted codes.
    CHECK(on_amx >= 20);
  } else {
    CHECK(on_amx == 0);
  }
}

TEST_CASE("int8 engine computes a QAT model's evaluation pass", "[int8]") {
  torch::manual_seed(8);
  mnv2::MobileNetV2 model(
      mnv2::MobileNetV2Options().num_classes(10).width_mult(0.5));
  mnv2::test::randomise_batchnorm(model);
  auto state = mnv2::make_qat_state(model, 4.0);
  model->train();
  {
    torch::NoGradGuard no_grad;
    mnv2::qat_forward(model, state, torch::randn({8, 3, 64, 64}));
  }
  model->eval();
  const auto network = mnv2::qat_quantized_network(model, state);
  const mnv2::OneDnnMobileNetV2 engine(network);
  const auto images = torch::randn({5, 3, 64, 64});
  // QAT's evaluation rounds the residual add in one FMA (test_qat.cpp holds
  // it to the simulation). Where this CPU's kernels round it apart, the
  // simulation rounded their way stands in for it.
  const auto expected =
      torch::softmax(mnv2::OneDnnMobileNetV2::int8_residual_add() ==
                             mnv2::ResidualAdd::kFusedMultiplyAdd
                         ? mnv2::qat_forward(model, state, images)
                         : simulated(network, images),
                     1);
  const auto actual = torch::softmax(engine.forward(images), 1);
  CHECK((actual - expected).abs().max().item<double>() < 1e-5);
}

TEST_CASE("int8 engine computes a batch split among threads as a whole",
          "[int8]") {
  // From two images per thread, each thread runs its shares of two to four
  // images alone, one after another, in its own plans and buffers: uneven
  // shares, shares of different sizes in one call and in one thread (9 on 2
  // threads: 3 + 2 and 2 + 2; 19: 4 + 3 + 3 and 3 + 3 + 3), three threads on
  // two cores, and the same shapes again (plans reused).
  const auto net = quantized_model(
      mnv2::MobileNetV2Options().num_classes(10).width_mult(0.5));
  const mnv2::OneDnnMobileNetV2 engine(net);
  const int threads_before = at::get_num_threads();
  for (const int threads : {2, 3}) {
    at::set_num_threads(threads);
    for (const int64_t batch : {4, 5, 7, 9, 19, 5}) {
      torch::manual_seed(batch);
      const auto images = torch::randn({batch, 3, 48, 48});
      const auto expected = simulated(net, images);
      for (const bool channels_last : {false, true}) {
        INFO(threads << " threads, batch " << batch
                     << (channels_last ? " NHWC" : " NCHW"));
        const auto input = in_memory_format(images, channels_last);
        const auto actual = engine.forward(input);
        CHECK(mnv2::test::relative_error(actual, expected) < 1e-5);
        // Each image alone, unsplit.
        for (int64_t i = 0; i < batch; ++i) {
          const auto alone = engine.forward(input.slice(0, i, i + 1));
          CHECK((alone - actual.slice(0, i, i + 1)).abs().max().item<double>() <
                1e-5 * (1 + alone.abs().max().item<double>()));
        }
      }
    }
  }
  at::set_num_threads(threads_before);
}

TEST_CASE("int8 engine computes one image split by rows among threads",
          "[int8]") {
  // One image runs as a part per thread, each computing its rows of every
  // layer, with barriers where a layer reads another part's rows or a new
  // activation moves them: odd sizes (parts of unlike rows), TF SAME
  // padding (the extra row at the bottom), 2 and 3 threads, both formats;
  // a call where parallel regions are inactive (as inside a caller's own),
  // whose team of one runs all parts phase by phase (a missing barrier
  // reads rows not yet written there); and 16x16, whose last layers have one
  // row (unsplit).
  const std::vector<std::pair<std::string, mnv2::MobileNetV2Options>> models = {
      {"0.5", mnv2::MobileNetV2Options().num_classes(10).width_mult(0.5)},
      {"0.35 tf_same",
       mnv2::MobileNetV2Options()
           .num_classes(7)
           .width_mult(0.35)
           .padding(mnv2::Padding::kTfSame)
           .bn_eps(1e-3)}};
  const int threads_before = at::get_num_threads();
  for (const auto& [name, options] : models) {
    const auto net = quantized_model(options);
    const mnv2::OneDnnMobileNetV2 engine(net);
    for (const int64_t size : {16, 33, 64, 97}) {
      torch::manual_seed(size);
      const auto images = torch::randn({1, 3, size, size});
      const auto expected = simulated(net, images);
      for (const bool channels_last : {false, true}) {
        const auto input = in_memory_format(images, channels_last);
        for (const int threads : {2, 3}) {
          INFO(name << ": " << size << "x" << size << ", " << threads
                    << " threads" << (channels_last ? " NHWC" : " NCHW"));
          at::set_num_threads(threads);
          CHECK(mnv2::test::relative_error(engine.forward(input), expected) <
                1e-5);
          // As in a caller's own region: every region a team of one.
          const int levels = omp_get_max_active_levels();
          omp_set_max_active_levels(0);
          const auto alone = engine.forward(input);
          omp_set_max_active_levels(levels);
          CHECK(mnv2::test::relative_error(alone, expected) < 1e-5);
        }
      }
    }
  }
  at::set_num_threads(threads_before);
}

TEST_CASE("int8 engine clips ReLU6 where its codes reach past 6", "[int8]") {
  // The engine leaves ReLU6 to the u8 codes' saturation where the top code
  // stands for 6 or less (every calibrated step). Steps of 12 / 255 (as a
  // trained range may be) keep the clip: outputs over 6 (biases raised by
  // 5) must code as round(6 / step), not higher.
  auto net = quantized_model(
      mnv2::MobileNetV2Options().num_classes(10).width_mult(0.5));
  int widened = 0;
  size_t n = 0;
  for (auto& block : net.network.blocks) {
    for (auto& conv : block.convs) {
      if (conv.relu6) {
        net.convs[n].output_scale = 12.0 / 255;
        conv.bias = conv.bias + 5;  // many outputs over 6
        ++widened;
      }
      ++n;
    }
  }
  REQUIRE(widened > 10);
  const mnv2::OneDnnMobileNetV2 engine(net);
  for (const int64_t batch : {1, 2}) {
    INFO("batch " << batch);
    torch::manual_seed(batch);
    const auto images = torch::randn({batch, 3, 64, 64}) * 3;
    CHECK(mnv2::test::relative_error(engine.forward(images),
                                     simulated(net, images)) < 1e-5);
  }
}

TEST_CASE("int8 engine answers from a thread other than the one that planned",
          "[int8]") {
  // The engine's promise (onednn_network.h): any thread may call. Plans are
  // built in the first caller's thread; their primitives take the
  // scratchpad the plan passes, never a per-thread one of oneDNN's.
  const auto net = quantized_model(
      mnv2::MobileNetV2Options().num_classes(10).width_mult(0.5));
  const mnv2::OneDnnMobileNetV2 engine(net);
  for (const int64_t batch : {1, 6}) {
    INFO("batch " << batch);
    const auto images = torch::randn({batch, 3, 64, 64});
    const auto here = engine.forward(images);  // plans it in this thread
    torch::Tensor there;
    std::thread([&] { there = engine.forward(images); }).join();
    CHECK(torch::equal(there, here));
  }
}

TEST_CASE("int8 engine quantizes images as the integer oracle does", "[int8]") {
  // codes = clamp(round-half-even(x * (1 / step)), -128, 127), as
  // tests/oracle/check_int8.py and the QAT fake quantizer compute them:
  // ties both ways, saturation, infinities, NaN (-128, as oneDNN's
  // conversion gives), over several chunks and a ragged end.
  const float step = 0.03125f;  // a power of two: x / step is exact
  const int64_t count = 3 * 16384 + 37;
  torch::manual_seed(3);
  auto images = torch::randn({count}) * 2;
  auto* x = images.data_ptr<float>();
  const float ties[] = {0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 126.5f, -127.5f};
  for (int i = 0; i < 8; ++i) {
    x[100 + i] = ties[i] * step;
  }
  x[200] = 1e6f;
  x[201] = -1e6f;
  x[202] = std::numeric_limits<float>::infinity();
  x[203] = -std::numeric_limits<float>::infinity();
  x[204] = std::numeric_limits<float>::quiet_NaN();
  auto expected = torch::clamp(torch::round(images * (1.f / step)), -128, 127);
  expected[204] = -128;
  std::vector<int8_t> codes(count);
  at::set_num_threads(2);
  mnv2::onednn_layers::quantize_images(x, codes.data(), count, step);
  const auto actual =
      torch::from_blob(codes.data(), {count}, torch::kInt8).to(torch::kFloat);
  CHECK(torch::equal(actual, expected));
  CHECK(codes[100] == 0);
  CHECK(codes[101] == 2);
  CHECK(codes[102] == 2);
  CHECK(codes[106] == 126);
  CHECK(codes[107] == -128);
  CHECK(codes[204] == -128);
}

TEST_CASE("int8 engine pools codes as the integer oracle does", "[int8]") {
  // The mean of each channel's real values (code * step) over the pixels,
  // as tests/oracle/check_int8.py computes it in float64: two images of
  // 7x7 pixels and 37 channels (a ragged vector end), all codes 255 in one
  // channel (the largest sum), all 0 in another.
  const int64_t images = 2, pixels = 49, channels = 37;
  const float step = 0.0235f;
  torch::manual_seed(4);
  auto codes = torch::randint(0, 256, {images, pixels, channels}, torch::kU8);
  codes.select(2, 3).fill_(255);
  codes.select(2, 4).fill_(0);
  std::vector<float> pooled(images * channels, -1.f);
  mnv2::onednn_layers::pool_codes(
      codes.data_ptr<uint8_t>(), images, pixels, channels, step, pooled.data());
  const auto expected =
      (codes.to(torch::kDouble) * static_cast<double>(step)).mean(1);
  const auto actual =
      torch::from_blob(pooled.data(), {images, channels}, torch::kFloat)
          .to(torch::kDouble);
  CHECK(((actual - expected).abs() / expected.abs().clamp_min(1e-30))
            .max()
            .item<double>() < 3e-7);
  CHECK(actual[0][4].item<double>() == 0);
  CHECK(actual[1][3].item<double>() ==
        Approx(255.0 * static_cast<double>(step)).epsilon(2e-7));
}
