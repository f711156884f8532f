// Row 5: images/s on the GPU, side by side with the machine's own PyTorch
// (peer_throughput.py: torchvision's mobilenet_v2, the same batches, AMP
// fp16, channels_last, cudnn.benchmark and CUDA-event timing), as a ratio.
// The rows pass when both sides ran; the ratio is the finding.
#include "checks.h"

#include <mobilenetv2/util/autocast_guard.h>
#include <mobilenetv2/util/memory_format.h>
#include "train/step/grad_scaler.h"
#include "train/step/optimizer.h"
#include "train/step/train_step.h"

#include <mobilenetv2/nn/mobilenet_v2.h>

#include <torch/torch.h>

#ifdef MNV2_WITH_CUDA
#include <ATen/cuda/CUDAEvent.h>
#endif

#include <cstdio>
#include <functional>
#include <map>
#include <sstream>

namespace mnv2::gpu_check {

namespace {

constexpr int kWarmup = 15;
constexpr int kTrainSteps = 40;
constexpr int kInferSteps = 40;  // x8 at batch 1
const std::vector<int64_t> kTrainBatches = {128, 256};
const std::vector<int64_t> kInferBatches = {1, 256};

// Seconds for `steps` calls after `warmup` untimed ones, between two CUDA
// events (as the peer times).
double timed(const std::function<void()>& step, int warmup, int steps) {
#ifdef MNV2_WITH_CUDA
  for (int i = 0; i < warmup; ++i) {
    step();
  }
  at::cuda::CUDAEvent start(cudaEventDefault);
  at::cuda::CUDAEvent end(cudaEventDefault);
  start.record();
  for (int i = 0; i < steps; ++i) {
    step();
  }
  end.record();
  end.synchronize();
  return start.elapsed_time(end) / 1000.0;
#else
  static_cast<void>(step);
  static_cast<void>(warmup);
  static_cast<void>(steps);
  throw std::runtime_error("this LibTorch has no CUDA");
#endif
}

std::pair<torch::Tensor, torch::Tensor> batch(int64_t size,
                                              const torch::Device& device) {
  auto g = at::make_generator<at::CPUGeneratorImpl>(1);
  auto x = torch::randn({size, 3, 224, 224}, g);
  auto y = torch::randint(0, 1000, {size}, g, torch::kLong);
  return {x.to(device).contiguous(torch::MemoryFormat::ChannelsLast),
          y.to(device)};
}

// torchvision's mobilenet_v2 as the peer builds it: 1000 classes, on the
// device, channels_last.
MobileNetV2 peer_shaped_model(const torch::Device& device) {
  torch::manual_seed(0);
  MobileNetV2 model;
  model->to(device);
  use_channels_last(*model);
  return model;
}

double train_images_per_second(int64_t size, const torch::Device& device) {
  auto model = peer_shaped_model(device);
  model->train();
  Optimizer optimizer(weight_decay_groups(*model, 4e-5, 0), OptimizerOptions{});
  GradScaler scaler(device, true);
  TrainStepParts parts{model, &optimizer, &scaler};
  TrainStepSettings settings;
  settings.device = device;
  settings.amp_dtype = torch::kHalf;
  const auto [x, y] = batch(size, device);
  MicroBatch where;
  where.lr = 0.01;
  const double seconds = timed(
      [&] {
        train_micro_batch(parts, settings, x, y, where);
        ++where.global_step;
      },
      kWarmup,
      kTrainSteps);
  return static_cast<double>(size * kTrainSteps) / seconds;
}

double infer_images_per_second(int64_t size, const torch::Device& device) {
  auto model = peer_shaped_model(device);
  model->eval();
  const auto x = batch(size, device).first;
  const int steps = kInferSteps * (size == 1 ? 8 : 1);
  const double seconds = timed(
      [&] {
        torch::NoGradGuard no_grad;
        AutocastGuard autocast(device.type(), torch::kHalf, true);
        model->forward(x);
      },
      kWarmup,
      steps);
  return static_cast<double>(size * steps) / seconds;
}

std::string join(const std::vector<int64_t>& values) {
  std::string text;
  for (const auto v : values) {
    if (!text.empty()) {
      text += ',';
    }
    text += std::to_string(v);
  }
  return text;
}

// Runs the peer; returns "train 128" -> images/s, and its version line.
std::map<std::string, double> run_peer(const CheckOptions& options,
                                       std::string& versions) {
  const auto log = options.out_dir + "/peer_throughput.log";
  // The allocator settings our programs start with (libtorch-facts.md).
  const std::string command =
      "GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold="
      "1073741824 '" +
      options.python + "' '" + options.peer_script + "' --train " +
      join(kTrainBatches) + " --infer " + join(kInferBatches) + " --warmup " +
      std::to_string(kWarmup) + " --train-steps " +
      std::to_string(kTrainSteps) + " --infer-steps " +
      std::to_string(kInferSteps) + " > '" + log + "' 2>&1";
  if (std::system(command.c_str()) != 0) {
    throw std::runtime_error("the PyTorch peer failed; log: " + log);
  }
  std::map<std::string, double> rates;
  std::FILE* file = std::fopen(log.c_str(), "r");
  char line[512];
  while (file && std::fgets(line, sizeof line, file)) {
    char kind[16];
    long long size = 0;
    double rate = 0;
    if (std::sscanf(line, "%15s %lld %lf", kind, &size, &rate) == 3) {
      rates[std::string(kind) + " " + std::to_string(size)] = rate;
    } else if (std::string(line).rfind("torch ", 0) == 0) {
      versions = line;
      versions.erase(versions.find_last_not_of('\n') + 1);
    }
  }
  if (file) {
    std::fclose(file);
  }
  return rates;
}

}  // namespace

void check_throughput(const CheckOptions& options, Table& table) {
  if (!options.device.is_cuda()) {
    table.skip("throughput", "skipped: no CUDA");
    return;
  }
  // Ours first, then the peer, never both at once.
  std::map<std::string, double> ours;
  std::map<std::string, std::string> failures;
  for (const auto size : kTrainBatches) {
    const auto key = "train " + std::to_string(size);
    try {
      ours[key] = train_images_per_second(size, options.device);
    } catch (const std::exception& e) {
      failures[key] = e.what();
    }
  }
  for (const auto size : kInferBatches) {
    const auto key = "infer " + std::to_string(size);
    try {
      ours[key] = infer_images_per_second(size, options.device);
    } catch (const std::exception& e) {
      failures[key] = e.what();
    }
  }
  std::map<std::string, double> peer;
  std::string versions = "PyTorch";
  std::string peer_error;
  try {
    peer = run_peer(options, versions);
  } catch (const std::exception& e) {
    peer_error = e.what();
  }
  const auto report = [&](const std::string& key, const std::string& what) {
    std::string name = key;
    name.replace(name.find(' '), 1, "_b");
    name = "throughput_" + name;
    if (failures.count(key)) {
      table.error(name, failures[key]);
      return;
    }
    if (!peer.count(key)) {
      table.add(name,
                false,
                "ours " + sig(ours[key], 4) + " img/s; peer: " +
                    (peer_error.empty() ? "no figure" : peer_error));
      return;
    }
    table.add(name,
              true,
              "ours " + sig(ours[key], 4) + " img/s, " + versions + " " +
                  sig(peer[key], 4) + " img/s: ratio " +
                  sig(ours[key] / peer[key], 3) + " (" + what + ")");
  };
  for (const auto size : kTrainBatches) {
    report("train " + std::to_string(size),
           "224 px, AMP fp16, channels_last, SGD");
  }
  for (const auto size : kInferBatches) {
    report("infer " + std::to_string(size),
           "224 px, AMP fp16, channels_last, eager");
  }
}

}  // namespace mnv2::gpu_check
