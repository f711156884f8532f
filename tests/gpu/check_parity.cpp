// Rows 1 and 3: the device against the CPU, for training (forward and
// backward in train mode) and for every inference path.
#include "checks.h"

#include <mobilenetv2/util/autocast_guard.h>
#include <mobilenetv2/util/memory_format.h>

#include <mobilenetv2/engines/scripted_network.h>
#include <mobilenetv2/nn/folded_network.h>
#include <mobilenetv2/nn/mobilenet_v2.h>
#include <mobilenetv2/torch_files/load_weights.h>
#include <mobilenetv2/torch_files/state_dict.h>

#include <ATen/Context.h>
#include <torch/script.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>

namespace mnv2::gpu_check {

double relative_error(const torch::Tensor& got, const torch::Tensor& want) {
  const auto g = got.detach().to(torch::kCPU, torch::kDouble);
  const auto w = want.detach().to(torch::kCPU, torch::kDouble);
  const double scale = std::max(w.abs().max().item<double>(), 1e-30);
  return (g - w).abs().max().item<double>() / scale;
}

NoTf32::NoTf32()
    : cudnn_(at::globalContext().allowTF32CuDNN()),
      cublas_(at::globalContext().allowTF32CuBLAS()) {
  at::globalContext().setAllowTF32CuDNN(false);
  at::globalContext().setAllowTF32CuBLAS(false);
}

NoTf32::~NoTf32() {
  at::globalContext().setAllowTF32CuDNN(cudnn_);
  at::globalContext().setAllowTF32CuBLAS(cublas_);
}

namespace {

// Train-mode forward and backward, no dropout (it would draw other masks on
// another device): 1.0 width, 10 classes, batch 8 at 96x96 keeps the CPU's
// fp64 reference quick and BatchNorm's last sets at 72 values.
constexpr int64_t kParityClasses = 10;

MobileNetV2 seeded_model() {
  torch::manual_seed(11);
  return MobileNetV2(
      MobileNetV2Options().num_classes(kParityClasses).dropout(0));
}

struct Pass {
  torch::Tensor logits;
  std::vector<torch::Tensor> grads;
};

Pass forward_backward(const torch::Device& device,
                      torch::ScalarType dtype,
                      bool channels_last,
                      const torch::Tensor& images,
                      const torch::Tensor& loss_weights) {
  auto model = seeded_model();
  model->to(device, dtype);
  if (channels_last) {
    use_channels_last(*model);
  }
  model->train();
  auto x = images.to(device, dtype);
  if (channels_last) {
    x = x.contiguous(torch::MemoryFormat::ChannelsLast);
  }
  Pass pass;
  pass.logits = model->forward(x);
  (pass.logits * loss_weights.to(device, dtype)).sum().backward();
  for (const auto& p : model->parameters()) {
    pass.grads.push_back(p.grad());
  }
  return pass;
}

// ||got - want|| / ||want|| over all parameters' gradients together: some
// are zero in exact arithmetic (a BatchNorm shift followed by a convolution
// and a train-mode BatchNorm, which removes any per-channel constant) and
// hold only rounding noise, so a per-tensor relative error means nothing.
double gradient_error(const Pass& got, const Pass& want) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < want.grads.size(); ++i) {
    const auto g = got.grads[i].detach().to(torch::kCPU, torch::kDouble);
    const auto w = want.grads[i].detach().to(torch::kCPU, torch::kDouble);
    diff += (g - w).pow(2).sum().item<double>();
    norm += w.pow(2).sum().item<double>();
  }
  return std::sqrt(diff / norm);
}

}  // namespace

void check_forward_backward(const CheckOptions& options, Table& table) {
  const NoTf32 exact;
  auto g = at::make_generator<at::CPUGeneratorImpl>(5);
  const auto images = torch::randn({8, 3, 96, 96}, g, torch::kDouble);
  const auto loss_weights =
      torch::randn({8, kParityClasses}, g, torch::kDouble);
  const auto reference = forward_backward(
      torch::kCPU, torch::kDouble, false, images, loss_weights);
  // fp64 differs from the CPU only in summation order (measured on the CPU:
  // 1e-13). fp32 (TF32 off) rounds: logits within 5e-5, and gradients, whose
  // train-mode BatchNorm backward cancels most of what flows through it,
  // within about 1.1e-2 in relative L2 norm over all parameters (CPU fp32 vs
  // fp64 on this model and batch). A wrong kernel or memory format is off by
  // order 1.
  struct Case {
    torch::ScalarType dtype;
    bool channels_last;
    double logits_tolerance;
    double grads_tolerance;
  };
  const Case cases[] = {{torch::kDouble, false, 1e-9, 1e-9},
                        {torch::kDouble, true, 1e-9, 1e-9},
                        {torch::kFloat, false, 1e-4, 5e-2},
                        {torch::kFloat, true, 1e-4, 5e-2}};
  const auto device = options.device.str();
  for (const auto& c : cases) {
    const std::string name =
        std::string("train_pass_") +
        (c.dtype == torch::kDouble ? "fp64" : "fp32") +
        (c.channels_last ? "_channels_last" : "_contiguous");
    if (options.device.is_cpu() && c.dtype == torch::kDouble &&
        !c.channels_last) {
      continue;  // the reference itself
    }
    try {
      const auto got = forward_backward(
          options.device, c.dtype, c.channels_last, images, loss_weights);
      const double logits = relative_error(got.logits, reference.logits);
      const double grads = gradient_error(got, reference);
      table.add(name,
                logits <= c.logits_tolerance && grads <= c.grads_tolerance,
                device + " vs cpu fp64: logits " + sig(logits) +
                    " (max rel, tolerance " + sig(c.logits_tolerance, 1) +
                    "), grads " + sig(grads) + " (rel L2, tolerance " +
                    sig(c.grads_tolerance, 1) + ")");
    } catch (const std::exception& e) {
      table.error(name, e.what());
    }
  }
}

void check_inference(const CheckOptions& options, Table& table) {
  const NoTf32 exact;
  // A model with non-trivial BatchNorm statistics, so folding has work.
  torch::manual_seed(3);
  MobileNetV2 model(MobileNetV2Options().num_classes(1000));
  {
    torch::NoGradGuard no_grad;
    for (auto& item : model->named_buffers()) {
      if (item.key().ends_with("running_mean")) {
        item.value().uniform_(-0.2, 0.2);
      } else if (item.key().ends_with("running_var")) {
        item.value().uniform_(0.5, 1.5);
      }
    }
  }
  model->eval();
  auto g = at::make_generator<at::CPUGeneratorImpl>(9);
  const auto images = torch::randn({4, 3, 224, 224}, g);
  torch::Tensor reference;
  {
    torch::NoGradGuard no_grad;
    reference = model->forward(images);
  }
  const auto device = options.device.str();
  const auto on_device = images.to(options.device);

  // Eager, both memory formats.
  for (const bool channels_last : {false, true}) {
    const std::string name = std::string("infer_eager_fp32_") +
                             (channels_last ? "channels_last" : "contiguous");
    try {
      MobileNetV2 copy(MobileNetV2Options().num_classes(1000));
      load_weights(*copy, state_dict_of(*model));
      copy->to(options.device);
      copy->eval();
      auto x = on_device;
      if (channels_last) {
        use_channels_last(*copy);
        x = x.contiguous(torch::MemoryFormat::ChannelsLast);
      }
      torch::NoGradGuard no_grad;
      const double error = relative_error(copy->forward(x), reference);
      table.add(name,
                error <= 1e-4,
                device + " vs cpu eager fp32: logits " + sig(error) +
                    " (rel, tolerance 1e-4)");
    } catch (const std::exception& e) {
      table.error(name, e.what());
    }
  }

  // The folded network as mnv2-export writes it (TorchScript).
  try {
    auto scripted = scripted_network(fold_batchnorm(model));
    scripted.to(options.device);
    scripted.eval();
    torch::NoGradGuard no_grad;
    const auto logits = scripted.forward({on_device}).toTensor();
    const double error = relative_error(logits, reference);
    table.add("infer_folded_torchscript_fp32",
              error <= 1e-4,
              device + " vs cpu eager fp32: logits " + sig(error) +
                  " (rel, tolerance 1e-4)");
  } catch (const std::exception& e) {
    table.error("infer_folded_torchscript_fp32", e.what());
  }

  // fp16 autocast (the deployment setting on GPUs): fp16 rounding of every
  // activation; the classes must still rank alike.
  try {
    model->to(options.device);
    torch::NoGradGuard no_grad;
    torch::Tensor logits;
    {
      AutocastGuard autocast(options.device.type(), torch::kHalf, true);
      logits = model->forward(on_device).to(torch::kFloat);
    }
    const double error = relative_error(logits, reference);
    const bool same_top1 =
        torch::equal(logits.argmax(1).cpu(), reference.argmax(1));
    table.add("infer_eager_amp_fp16",
              error <= 2e-2 && same_top1,
              device + " vs cpu eager fp32: logits " + sig(error) +
                  " (rel, tolerance 2e-2), same top-1: " +
                  (same_top1 ? "yes" : "no"));
  } catch (const std::exception& e) {
    table.error("infer_eager_amp_fp16", e.what());
  }
}

}  // namespace mnv2::gpu_check
