// mnv2::OneDnnMobileNetV2 (oneDNN primitives called directly) against the
// eager model, itself equal to torchvision's (parity tests) and to an
// independent Keras forward pass with TF "SAME" padding (pretrained tests).
#include "test_support.h"

#include <mobilenetv2/engines/onednn/onednn_mobilenet_v2.h>
#include <mobilenetv2/engines/plain_network.h>
#include <mobilenetv2/nn/folded_network.h>

#include "engines/onednn/onednn_network.h"

#include <catch2/catch.hpp>

#include <link.h>

#include <filesystem>
#include <fstream>
#include <set>

namespace {

mnv2::MobileNetV2 trained_model(const mnv2::MobileNetV2Options& options) {
  torch::manual_seed(21);
  mnv2::MobileNetV2 model(options);
  mnv2::test::randomise_batchnorm(model);
  model->eval();
  return model;
}

mnv2::MobileNetV2Options small() {
  return mnv2::MobileNetV2Options().num_classes(10).width_mult(0.5);
}

}  // namespace

TEST_CASE("OneDnnMobileNetV2 computes what the eager model does", "[onednn]") {
  // Widths whose channel counts are not multiples of oneDNN's 8 or 16
  // blocks (0.35: 8 and 16 channels; 1.4: 1792 features; 1.02: 1304
  // features, which a 16-channel block pads before the classifier), TF "SAME"
  // padding (asymmetric on even sizes, no depthwise fusion for stride 2),
  // and sizes down to one pixel.
  const std::vector<std::pair<std::string, mnv2::MobileNetV2Options>> models = {
      {"0.5", small()},
      {"0.35", mnv2::MobileNetV2Options().num_classes(7).width_mult(0.35)},
      {"1.4", mnv2::MobileNetV2Options().num_classes(5).width_mult(1.4)},
      {"1.02", mnv2::MobileNetV2Options().num_classes(6).width_mult(1.02)},
      {"0.5 tf_same", small().padding(mnv2::Padding::kTfSame).bn_eps(1e-3)}};
  const std::vector<std::pair<int64_t, int64_t>> shapes = {
      {1, 224}, {5, 97}, {3, 64}, {2, 33}, {64, 32}, {1, 16}, {2, 1}};
  torch::NoGradGuard no_grad;
  for (const auto& [name, options] : models) {
    auto model = trained_model(options);
    const mnv2::OneDnnMobileNetV2 onednn(model);
    for (const auto& [batch, size] : shapes) {
      const auto images = torch::randn({batch, 3, size, size});
      const auto expected = model->forward(images);
      for (const bool channels_last : {false, true}) {
        INFO(name << ": " << batch << "x" << size
                  << (channels_last ? " NHWC" : " NCHW"));
        const auto input =
            channels_last ? images.contiguous(torch::MemoryFormat::ChannelsLast)
                          : images;
        const auto logits = onednn.forward(input);
        CHECK(logits.sizes() == expected.sizes());
        CHECK(mnv2::test::relative_error(logits, expected) < 1e-4);
      }
    }
  }
}

TEST_CASE("the oneDNN executor in both layouts, with and without fusion",
          "[onednn]") {
  // BatchNorm as after training, where many activations reach ReLU6's
  // bound: oneDNN 2.6's fused kernel in NHWC got these wrong (a trained
  // model's top-1 fell from 19% to 11% in programs.train_eval_export) while
  // the milder BatchNorm of trained_model() hid it.
  using Layout = mnv2::OneDnnNetwork::Layout;
  torch::manual_seed(5);
  torch::NoGradGuard no_grad;
  mnv2::MobileNetV2 model(small());
  for (auto& module : model->modules(/*include_self=*/false)) {
    if (auto* bn = module->as<torch::nn::BatchNorm2d>()) {
      bn->running_mean.uniform_(-0.5, 0.5);
      bn->running_var.uniform_(0.5, 1.5);
      bn->weight.uniform_(0.8, 1.5);
      bn->bias.uniform_(0.5, 3.0);
    }
  }
  model->eval();
  const auto plain = mnv2::to_plain_network(mnv2::fold_batchnorm(model));
  for (const auto& [batch, size] :
       std::vector<std::pair<int64_t, int64_t>>{{64, 32}, {8, 96}, {2, 224}}) {
    const auto images = torch::randn({batch, 3, size, size});
    const auto expected = model->forward(images);
    for (const auto layout : {Layout::kBlocked, Layout::kNhwc}) {
      for (const bool fuse : {true, false}) {
        INFO(batch << "x" << size << ", fuse_depthwise " << fuse
                   << (layout == Layout::kNhwc ? ", NHWC" : ", blocked"));
        const mnv2::OneDnnNetwork network(plain, fuse, layout);
        REQUIRE(network.outputs() == 10);
        auto logits = torch::empty({batch, 10});
        network.forward(images.data_ptr<float>(),
                        {batch, 3, size, size},
                        false,
                        logits.data_ptr<float>());
        CHECK(mnv2::test::relative_error(logits, expected) < 1e-4);
      }
    }
  }
}

TEST_CASE("the oneDNN add-on runs on the oneDNN the build found", "[onednn]") {
  // Not another libdnnl.so.3 that the loader happened to find first.
  CHECK(mnv2::onednn_version() == MNV2_FOUND_ONEDNN);
  CHECK_THAT(mnv2::onednn_version(), Catch::StartsWith("3."));
}

TEST_CASE("one OpenMP runtime and one oneDNN library in the process",
          "[onednn]") {
  // What the loader mapped (/proc/self/maps): oneDNN must run on LibTorch's
  // OpenMP, not a second runtime beside it, whatever order it found them in.
  namespace fs = std::filesystem;
  std::set<fs::path> openmp, onednn;
  fs::path torch_dir;
  std::ifstream maps("/proc/self/maps");
  for (std::string line; std::getline(maps, line);) {
    const auto slash = line.find('/');
    if (slash == std::string::npos) {
      continue;
    }
    const fs::path file = line.substr(slash);
    const auto name = file.filename().string();
    if (name.find("libgomp") == 0 || name.find("libiomp") == 0 ||
        name.find("libomp") == 0) {
      openmp.insert(file);
    } else if (name.find("libdnnl") == 0) {
      onednn.insert(file);
    } else if (name.find("libtorch_cpu") == 0) {
      torch_dir = file.parent_path();
    }
  }
  INFO("OpenMP: "
       << Catch::Detail::stringify(std::vector(openmp.begin(), openmp.end()))
       << ", oneDNN: "
       << Catch::Detail::stringify(std::vector(onednn.begin(), onednn.end())));
  REQUIRE(openmp.size() == 1);
  CHECK(onednn.size() == 1);
  if (fs::exists(torch_dir / "libgomp.so.1")) {
    CHECK(openmp.begin()->parent_path() == torch_dir);
  }
}

TEST_CASE("LibTorch is loaded before oneDNN", "[onednn]") {
  // Both export the same C++ template instantiations and the first loaded
  // serves both: libdnnl's first made LibTorch's oneDNN Graph abort in
  // free() (mnv2-eval --engine graph). dl_iterate_phdr walks load order.
  std::vector<std::string> order;
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* out) {
        const auto name =
            std::filesystem::path(info->dlpi_name).filename().string();
        if (name.rfind("libtorch_cpu", 0) == 0 ||
            name.rfind("libdnnl", 0) == 0) {
          static_cast<std::vector<std::string>*>(out)->push_back(name);
        }
        return 0;
      },
      &order);
  INFO(Catch::Detail::stringify(order));
  REQUIRE(order.size() == 2);
  CHECK(order.front().rfind("libtorch_cpu", 0) == 0);
}

TEST_CASE("OneDnnMobileNetV2 keeps answering as input shapes change",
          "[onednn]") {
  // More shapes than plans kept, twice over: evicted plans are rebuilt and
  // the shared buffers grow and are re-pointed.
  auto model = trained_model(small());
  const mnv2::OneDnnMobileNetV2 onednn(model);
  torch::NoGradGuard no_grad;
  for (int round = 0; round < 2; ++round) {
    for (const int64_t size : {40, 128, 24, 64, 160, 32}) {
      INFO("round " << round << ", " << size << " px");
      const auto images = torch::randn({2, 3, size, size});
      CHECK(mnv2::test::relative_error(onednn.forward(images),
                                       model->forward(images)) < 1e-4);
    }
  }
}

TEST_CASE("OneDnnMobileNetV2 answers several threads at once", "[onednn]") {
  auto model = trained_model(small());
  const mnv2::OneDnnMobileNetV2 onednn(model);
  torch::NoGradGuard no_grad;
  const std::vector<torch::Tensor> inputs = {torch::randn({2, 3, 64, 64}),
                                             torch::randn({3, 3, 48, 48})};
  const auto errors = mnv2::test::errors_from_threads(
      [&](const torch::Tensor& x) { return onednn.forward(x); }, model, inputs);
  for (const double error : errors) {
    CHECK(error < 1e-4);
  }
}

TEST_CASE("OneDnnMobileNetV2 refuses what it cannot run", "[onednn]") {
  mnv2::MobileNetV2 training(small());
  CHECK_THROWS_WITH(mnv2::OneDnnMobileNetV2(training),
                    Catch::Contains("eval mode"));
  auto model = trained_model(small());
  const mnv2::OneDnnMobileNetV2 onednn(model);
  torch::NoGradGuard no_grad;
  CHECK_THROWS_WITH(onednn.forward(torch::randn({1, 4, 32, 32})),
                    Catch::Contains("[N, 3, H, W]"));
  CHECK_THROWS_WITH(
      onednn.forward(torch::randn({1, 3, 32, 32}).to(torch::kDouble)),
      Catch::Contains("fp32"));
  CHECK_THROWS_WITH(onednn.forward(torch::randn({1, 3, 0, 32})),
                    Catch::Contains("empty"));
  CHECK(onednn.forward(torch::randn({0, 3, 32, 32})).sizes() ==
        torch::IntArrayRef({0, 10}));
  // A strided view is copied, not misread.
  const auto wide = torch::randn({2, 3, 64, 128});
  const auto view = wide.slice(3, 0, 128, 2);
  CHECK(mnv2::test::relative_error(onednn.forward(view), model->forward(view)) <
        1e-4);
}
