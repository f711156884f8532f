// mnv2-bench-onednn: the oneDNN executor's activation layouts (blocked,
// NHWC) with and without the 1x1 + depthwise fusion, and the public
// OneDnnMobileNetV2 (input checks, output tensor), side by side in one
// process (MobileNetV2 1.0, 1000 classes, fp32, NCHW input). Rounds
// alternate the variants; the best of each is kept, so a shared VM's noise
// hits every variant alike. Prints one JSON object.
//   mnv2-bench-onednn [--size 224] [--batch 32] [--iterations 30]
//                     [--rounds 3] [--threads 2]
#include "bench_flags.h"
#include "engines/onednn/onednn_network.h"

#include <mobilenetv2/engines/onednn/onednn_mobilenet_v2.h>
#include <mobilenetv2/engines/plain_network.h>
#include <mobilenetv2/nn/folded_network.h>
#include <mobilenetv2/nn/mobilenet_v2.h>

#include <torch/torch.h>
#include <cxxopts.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <functional>
#include <iostream>

namespace {

using Layout = mnv2::OneDnnNetwork::Layout;

struct Variant {
  std::string name;
  std::function<void(const torch::Tensor&)> run;
  double b1_ms = 1e9;
  double bn_images_per_second = 0;
};

// The executor alone.
std::function<void(const torch::Tensor&)> logits_of(
    std::shared_ptr<mnv2::OneDnnNetwork> network) {
  return [network](const torch::Tensor& x) {
    auto logits = torch::empty({x.size(0), network->outputs()});
    network->forward(x.data_ptr<float>(),
                     {x.size(0), x.size(1), x.size(2), x.size(3)},
                     false,
                     logits.data_ptr<float>());
  };
}

double seconds_of(const Variant& v, const torch::Tensor& x) {
  const auto start = std::chrono::steady_clock::now();
  v.run(x);
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
      .count();
}

}  // namespace

int main(int argc, char** argv) {
  cxxopts::Options options("mnv2-bench-onednn",
                           "oneDNN executor layouts and fusion, side by side");
  options.add_options()(
      "size", "image size", cxxopts::value<int64_t>()->default_value("224"))(
      "batch", "batch size", cxxopts::value<int64_t>()->default_value("32"))(
      "iterations",
      "batch-1 passes per round",
      cxxopts::value<int>()->default_value("30"))(
      "rounds", "rounds", cxxopts::value<int>()->default_value("3"))(
      "threads", "threads", cxxopts::value<int>()->default_value("2"));
  const auto f = mnv2::bench::parse_flags_or_exit(options, argc, argv);
  try {
    const auto size = f["size"].as<int64_t>();
    const auto batch = f["batch"].as<int64_t>();
    const int iterations = f["iterations"].as<int>();
    at::set_num_threads(f["threads"].as<int>());
    at::init_num_threads();
    torch::manual_seed(0);
    mnv2::MobileNetV2 model(mnv2::MobileNetV2Options{});
    model->eval();
    const auto plain = mnv2::to_plain_network(mnv2::fold_batchnorm(model));
    // The public class as mnv2-eval runs it.
    const mnv2::OneDnnMobileNetV2 logits(model);
    std::vector<Variant> variants;
    variants.push_back({"OneDnnMobileNetV2 logits",
                        [&](const torch::Tensor& x) { logits.forward(x); }});
    for (const auto& [layout, layout_name] :
         {std::pair{Layout::kBlocked, "blocked"},
          std::pair{Layout::kNhwc, "nhwc"}}) {
      for (const bool fuse : {true, false}) {
        variants.push_back(
            {std::string(layout_name) + (fuse ? " fused" : " unfused"),
             logits_of(
                 std::make_shared<mnv2::OneDnnNetwork>(plain, fuse, layout))});
      }
    }
    const auto one = torch::randn({1, 3, size, size});
    const auto many = torch::randn({batch, 3, size, size});
    for (int round = 0; round < f["rounds"].as<int>(); ++round) {
      for (auto& v : variants) {
        for (int i = 0; i < 5; ++i) {
          seconds_of(v, one);
        }
        std::vector<double> times;
        for (int i = 0; i < iterations; ++i) {
          times.push_back(seconds_of(v, one));
        }
        std::sort(times.begin(), times.end());
        v.b1_ms = std::min(v.b1_ms, 1000 * times[times.size() / 2]);
        seconds_of(v, many);
        double total = 0;
        const int passes = std::max(3, iterations / 5);
        for (int i = 0; i < passes; ++i) {
          total += seconds_of(v, many);
        }
        v.bn_images_per_second =
            std::max(v.bn_images_per_second,
                     static_cast<double>(passes * batch) / total);
      }
    }
    nlohmann::json out = {{"onednn", mnv2::onednn_version()},
                          {"threads", at::get_num_threads()},
                          {"size", size},
                          {"batch", batch}};
    for (const auto& v : variants) {
      out["variants"][v.name] = {{"batch1_p50_ms", v.b1_ms},
                                 {"images_per_second", v.bn_images_per_second}};
    }
    std::cout << out.dump(1) << "\n";
  } catch (const std::exception& e) {
    std::cerr << "mnv2-bench-onednn: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
