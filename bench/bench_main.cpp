// mnv2-bench: measurements the Python drivers in bench/ put side by side
// with their PyTorch peers. Prints one JSON object.
//   mnv2-bench data DIR --workers N --size S --batch B --epochs E
//   mnv2-bench train-step --batch B --size S --steps N --threads T
//                         [--width-mult X] [--classes K] [--amp-dtype bf16]
//                         [--profile TRACE.json]
#include <mobilenetv2/nn/fused_batchnorm.h>
#include <mobilenetv2/util/autocast_guard.h>
#include <mobilenetv2/util/memory_format.h>
#include "bench_flags.h"
#include "common/runtime.h"
#include "data/data_loader.h"
#include "data/dataset.h"
#include "data/network_input.h"
#include "distributed/data_parallel.h"
#include "distributed/launch.h"
#include "distributed/process_group.h"
#include "train/step/optimizer.h"

#include <mobilenetv2/nn/mobilenet_v2.h>

#include <torch/csrc/autograd/profiler_legacy.h>
#include <torch/torch.h>
#include <cxxopts.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <iostream>
#include <optional>

namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
      .count();
}

nlohmann::json bench_data(const cxxopts::ParseResult& f) {
  mnv2::configure_runtime(f["threads"].as<int>());
  auto dataset = mnv2::open_dataset(f["data"].as<std::string>());
  mnv2::LoaderOptions o;
  o.batch_size = f["batch"].as<int64_t>();
  o.workers = f["workers"].as<int>();
  o.shuffle = true;
  o.train = true;
  o.train_transform.size = f["size"].as<int>();
  o.reduced_jpeg_decode = !f.count("full-decode");
  mnv2::DataLoader loader(dataset, o);
  const int epochs = f["epochs"].as<int>();
  int64_t images = 0;
  // One untimed epoch warms the page cache, as the Python peer's does.
  loader.start_epoch(0);
  while (loader.next()) {
  }
  const auto start = std::chrono::steady_clock::now();
  for (int e = 1; e <= epochs; ++e) {
    loader.start_epoch(e);
    while (auto batch = loader.next()) {
      // Normalised floats, as the peer's ToTensor + Normalize give.
      const auto x = mnv2::normalize_images(batch->images, torch::kCPU);
      images += x.size(0);
    }
  }
  const double s = seconds_since(start);
  return {
      {"images", images}, {"seconds", s}, {"images_per_second", images / s}};
}

// Training steps of MobileNetV2 1.0 on random data, as mnv2-train runs
// them; under mpirun every rank runs them through DataParallel (c10d's
// Reducer) and rank 0 reports the world's images/s and the share of the
// time spent inside MPI collectives.
nlohmann::json bench_train_step(const cxxopts::ParseResult& f) {
  const auto launch = mnv2::detect_launch();
  mnv2::configure_runtime(f["threads"].as<int>());
  const auto batch = f["batch"].as<int64_t>();
  const auto size = f["size"].as<int>();
  const auto steps = f["steps"].as<int>();
  const bool channels_last = f.count("channels-last") != 0;
  mnv2::set_fused_batchnorm_enabled(f.count("no-fused-batchnorm") == 0);
  torch::manual_seed(0);
  mnv2::MobileNetV2 model(mnv2::MobileNetV2Options()
                              .num_classes(f["classes"].as<int64_t>())
                              .width_mult(f["width-mult"].as<double>()));
  model->train();
  if (channels_last) {
    mnv2::use_channels_last(*model);
  }
  std::unique_ptr<mnv2::Distributed> dist;
  std::unique_ptr<mnv2::DataParallel> ddp;
  if (launch.distributed()) {
    dist = std::make_unique<mnv2::Distributed>(
        launch, torch::kCPU, mnv2::DistributedOptions{});
    ddp = std::make_unique<mnv2::DataParallel>(
        *model, *dist, mnv2::DataParallelOptions{});
  }
  mnv2::OptimizerOptions options;
  options.kind = "sgd";
  options.momentum = 0.9;
  mnv2::Optimizer optimizer(mnv2::weight_decay_groups(*model, 4e-5, 4e-5),
                            options);
  auto x = torch::randn({batch, 3, size, size});
  if (channels_last) {
    x = x.contiguous(torch::MemoryFormat::ChannelsLast);
  }
  const auto y =
      torch::randint(0, f["classes"].as<int64_t>(), {batch}, torch::kLong);
  const auto amp = f["amp-dtype"].as<std::string>();
  if (amp != "fp32" && amp != "bf16") {
    throw std::invalid_argument("--amp-dtype must be fp32 or bf16, got '" +
                                amp + "'");
  }
  auto step = [&] {
    if (ddp) {
      ddp->before_forward(true);
    }
    torch::Tensor loss;
    {
      mnv2::AutocastGuard autocast(
          torch::kCPU, torch::kBFloat16, amp == "bf16");
      loss = torch::nn::functional::cross_entropy(model->forward(x), y);
    }
    if (ddp) {
      ddp->after_forward(true);
    }
    optimizer.zero_grad();
    loss.backward();
    optimizer.step(0.01);
  };
  for (int i = 0; i < 2; ++i) {
    step();
  }
  const double comm_before = dist ? dist->seconds_in_collectives() : 0.0;
  // With --profile, the timed steps under LibTorch's profiler (its legacy
  // one: the wheel has no Kineto), written as a Chrome trace that
  // bench/train_profile.py sums per operator.
  std::optional<torch::autograd::profiler::RecordProfile> profile;
  if (const auto trace = f["profile"].as<std::string>(); !trace.empty()) {
    profile.emplace(trace);
  }
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < steps; ++i) {
    step();
  }
  const double s = seconds_since(start);
  profile.reset();
  const double comm =
      (dist ? dist->seconds_in_collectives() : 0.0) - comm_before;
  return {{"ranks", launch.world_size},
          {"amp_dtype", amp},
          {"rank", launch.rank},
          {"steps", steps},
          {"seconds", s},
          {"threads", at::get_num_threads()},
          {"images_per_second",
           static_cast<double>(steps * batch * launch.world_size) / s},
          {"collective_share", comm / s}};
}

}  // namespace

int main(int argc, char** argv) {
  cxxopts::Options options("mnv2-bench",
                           "Benchmark pieces of mnv2 (see bench/).");
  options.add_options()("mode",
                        "data or train-step (under mpirun: data-parallel)",
                        cxxopts::value<std::string>())(
      "data", "image folder", cxxopts::value<std::string>()->default_value(""))(
      "workers", "loader threads", cxxopts::value<int>()->default_value("1"))(
      "size", "image size", cxxopts::value<int>()->default_value("224"))(
      "batch", "batch size", cxxopts::value<int64_t>()->default_value("32"))(
      "epochs", "timed epochs", cxxopts::value<int>()->default_value("2"))(
      "steps",
      "timed training steps",
      cxxopts::value<int>()->default_value("10"))(
      "threads", "intra-op threads", cxxopts::value<int>()->default_value("0"))(
      "channels-last", "channels_last memory format")(
      "width-mult",
      "train-step: MobileNetV2's width multiplier",
      cxxopts::value<double>()->default_value("1.0"))(
      "classes",
      "train-step: classes of the classifier",
      cxxopts::value<int64_t>()->default_value("1000"))(
      "amp-dtype",
      "train-step: fp32, or bf16 under CPU autocast as mnv2-train --amp runs "
      "it",
      cxxopts::value<std::string>()->default_value("fp32"))(
      "no-fused-batchnorm",
      "train-step: LibTorch's BatchNorm and ReLU6 instead of the fused ones")(
      "profile",
      "train-step: write the timed steps' operator trace (Chrome JSON) here",
      cxxopts::value<std::string>()->default_value(""))(
      "full-decode", "data: decode JPEGs at full size (no reduction)");
  options.parse_positional({"mode", "data"});
  options.positional_help("data|train-step [DIR]");
  const auto flags = mnv2::bench::parse_flags_or_exit(options, argc, argv);
  try {
    const auto mode =
        flags.count("mode") ? flags["mode"].as<std::string>() : "";
    if (mode == "data") {
      std::cout << bench_data(flags).dump() << "\n";
    } else if (mode == "train-step") {
      const auto result = bench_train_step(flags);
      if (result["rank"] == 0) {
        std::cout << result.dump() << "\n";
      }
    } else {
      std::cerr << "mnv2-bench: the mode (first argument) is data or "
                   "train-step, got '"
                << mode << "' (see --help)\n";
      return mnv2::bench::kUsageError;
    }
  } catch (const std::exception& e) {
    std::cerr << "mnv2-bench: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
