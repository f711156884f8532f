#pragma once

#include <mobilenetv2/nn/fused_batchnorm.h>
#include <mobilenetv2/nn/mobilenet_v2.h>
#include <mobilenetv2/util/memory_format.h>

#include <torch/torch.h>

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace mnv2::test {

/// A folder named by an environment variable that ctest sets; fails the test
/// when it is unset, so a mis-registered test cannot pass by doing nothing.
inline std::filesystem::path folder_from_env(const char* variable) {
  const char* value = std::getenv(variable);
  if (value == nullptr || *value == '\0') {
    throw std::runtime_error(std::string(variable) +
                             " is not set: run this test through ctest");
  }
  return value;
}

/// Turns the CPU fast paths (mnv2-train --fused-batchnorm) on or off for
/// one scope, and back on after it.
struct FastPathSwitch {
  explicit FastPathSwitch(bool on) {
    mnv2::set_fused_batchnorm_enabled(on);
  }
  ~FastPathSwitch() {
    mnv2::set_fused_batchnorm_enabled(true);
  }
  FastPathSwitch(const FastPathSwitch&) = delete;
  FastPathSwitch& operator=(const FastPathSwitch&) = delete;
};

/// A fresh, empty temporary folder for one test.
inline std::filesystem::path fresh_temp_dir(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() / ("mnv2-test-" + name);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

/// max |a - b| / max |b|: the relative error used by the parity tests
/// (computed in fp64, so bf16 operands are compared exactly).
inline double relative_error(const torch::Tensor& a, const torch::Tensor& b) {
  const auto a64 = a.to(torch::kDouble);
  const auto b64 = b.to(torch::kDouble);
  const double scale = b64.abs().max().item<double>();
  const double diff = (a64 - b64).abs().max().item<double>();
  return diff / std::max(scale, 1e-12);
}

/// A random [rows x columns] matrix of bf16 values, as fp32: bf16 products'
/// inputs that are exact in both.
inline torch::Tensor bf16_valued_matrix(int64_t rows, int64_t columns) {
  return torch::randn({rows, columns}).to(torch::kBFloat16).to(torch::kFloat);
}

/// Whether the autograd graph behind `t` has a node whose name holds
/// `name`: which fused function a module's forward routed to.
inline bool graph_has(const torch::Tensor& t, const std::string& name) {
  std::vector<torch::autograd::Node*> stack{t.grad_fn().get()};
  std::set<torch::autograd::Node*> seen;
  while (!stack.empty()) {
    auto* node = stack.back();
    stack.pop_back();
    if (node == nullptr || !seen.insert(node).second) {
      continue;
    }
    if (node->name().find(name) != std::string::npos) {
      return true;
    }
    for (const auto& edge : node->next_edges()) {
      stack.push_back(edge.function.get());
    }
  }
  return false;
}

/// The documented top-1 claim of the reduced-precision engines (int8, bf16;
/// docs/inference.md): the same top-1 as fp32 wherever fp32's top-1
/// probability is at least 30% and at least 1.5x the runner-up's. Below that,
/// near-tied classes may swap with the host's arithmetic.
constexpr double kConfidentProbability = 0.30;
constexpr double kConfidentRatio = 1.5;

struct TopOneAgreement {
  int64_t covered = 0;  // rows the claim covers
  int64_t kept = 0;     // of those, rows with fp32's top-1
  std::string margins;  // each row: fp32's top-1 probability and ratio
};

/// The claim, row by row, for logits of the same images.
inline TopOneAgreement top1_agreement(const torch::Tensor& fp32_logits,
                                      const torch::Tensor& other_logits) {
  const auto p = torch::softmax(fp32_logits.to(torch::kDouble), 1);
  const auto top2 = p.topk(2, 1);
  const auto first = std::get<0>(top2).select(1, 0);
  const auto ratio = first / std::get<0>(top2).select(1, 1).clamp_min(1e-12);
  const auto same = std::get<1>(top2).select(1, 0) == other_logits.argmax(1);
  TopOneAgreement out;
  for (int64_t row = 0; row < p.size(0); ++row) {
    const double probability = first[row].item<double>();
    const double r = ratio[row].item<double>();
    const bool covered =
        probability >= kConfidentProbability && r >= kConfidentRatio;
    const bool kept = same[row].item<bool>();
    out.covered += covered;
    out.kept += covered && kept;
    out.margins += "row " + std::to_string(row) + ": " +
                   std::to_string(probability) + ", " + std::to_string(r) +
                   "x" + (covered ? "" : " (under the claim)") +
                   (kept ? " same top-1\n" : " other top-1\n");
  }
  return out;
}

/// Calls `forward` on each input from its own thread, all at once, four
/// times each; returns each thread's worst relative error against the
/// eager model's logits.
inline std::vector<double> errors_from_threads(
    const std::function<torch::Tensor(const torch::Tensor&)>& forward,
    mnv2::MobileNetV2& model,
    const std::vector<torch::Tensor>& inputs) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> expected;
  for (const auto& x : inputs) {
    expected.push_back(model->forward(x));
  }
  std::vector<double> errors(inputs.size(), 1.0);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < inputs.size(); ++i) {
    threads.emplace_back([&, i] {
      torch::NoGradGuard thread_no_grad;  // grad mode is per thread
      double worst = 0;
      for (int pass = 0; pass < 4; ++pass) {
        worst =
            std::max(worst, relative_error(forward(inputs[i]), expected[i]));
      }
      errors[i] = worst;
    });
  }
  for (auto& thread : threads) {
    thread.join();
  }
  return errors;
}

/// Randomised BatchNorm statistics and affine parameters, as training
/// leaves them, so that folding BatchNorm has something to fold. A wider
/// `bias` range also keeps ReLU6 from being nearly homogeneous (with bias 0,
/// scaling a BatchNorm's weight scales its channel, which the next
/// BatchNorm undoes: that weight's gradient is then a sum that cancels to
/// almost nothing, and float rounding shows in it).
inline void randomise_batchnorm(torch::nn::Module& network, double bias = 0.2) {
  torch::NoGradGuard no_grad;
  for (auto& module : network.modules(/*include_self=*/false)) {
    if (auto* bn = module->as<torch::nn::BatchNorm2d>()) {
      bn->running_mean.uniform_(-0.5, 0.5);
      bn->running_var.uniform_(0.5, 2.0);
      bn->weight.uniform_(0.5, 1.5);
      bn->bias.uniform_(-bias, bias);
    }
  }
}
inline void randomise_batchnorm(mnv2::MobileNetV2& model) {
  randomise_batchnorm(*model);
}

/// A training step's network and batch at odd sizes: MobileNetV2 0.35
/// with 7 classes from `seed`, channels_last, in training mode, and
/// `images` random 37x29 images with labels. No dropout: the tests compare
/// the fast kernels with LibTorch's, and the two draw different dropout
/// masks (test_dropout.cpp tests ours).
struct SmallTrainingStep {
  mnv2::MobileNetV2 model;
  torch::Tensor images, labels;
};
inline SmallTrainingStep small_training_step(int64_t images,
                                             uint64_t seed = 5) {
  torch::manual_seed(seed);
  mnv2::MobileNetV2 model(
      mnv2::MobileNetV2Options().num_classes(7).width_mult(0.35).dropout(0.0));
  mnv2::use_channels_last(*model);
  model->train();
  return {model,
          torch::randn({images, 3, 37, 29})
              .contiguous(torch::MemoryFormat::ChannelsLast),
          torch::randint(0, 7, {images}, torch::kLong)};
}

}  // namespace mnv2::test
