// Builds a MobileNetV2 from the installed package, runs it, and runs its
// fused inference forms (the oneDNN add-on's where the package has it).
#include <mobilenetv2/engines/fused_mobilenet_v2.h>
#include <mobilenetv2/nn/mobilenet_v2.h>
#ifdef MNV2_CONSUMER_ONEDNN
#include <mobilenetv2/engines/onednn/onednn_mobilenet_v2.h>
#endif

#include <torch/torch.h>

#include <iostream>

namespace {

double relative_error(const torch::Tensor& got, const torch::Tensor& want) {
  return (got - want).abs().max().item<double>() /
         want.abs().max().item<double>();
}

}  // namespace

int main() {
  mnv2::MobileNetV2 model(mnv2::MobileNetV2Options().num_classes(10));
  model->eval();
  torch::NoGradGuard no_grad;
  // As after training: freshly initialised, the logits are about 1e-9.
  for (auto& module : model->modules(/*include_self=*/false)) {
    if (auto* bn = module->as<torch::nn::BatchNorm2d>()) {
      bn->running_var.uniform_(0.5, 2.0);
      bn->bias.uniform_(-0.2, 0.2);
    }
  }
  const auto images = torch::randn({2, 3, 96, 96});
  const auto logits = model->forward(images);
  const auto maps = model->forward_feature_maps(torch::randn({1, 3, 64, 64}));
  const mnv2::FusedMobileNetV2 fused(model);
  fused.forward(images);  // the first call profiles the graph
  const double error = relative_error(fused.forward(images), logits);
  double onednn_error = 0;
#ifdef MNV2_CONSUMER_ONEDNN
  const mnv2::OneDnnMobileNetV2 onednn(model);
  onednn_error = relative_error(onednn.forward(images), logits);
  std::cout << "oneDNN add-on relative error " << onednn_error << "\n";
#endif
  std::cout << "logits " << logits.sizes() << ", " << maps.size()
            << " feature maps, fused engine relative error " << error
            << ", native bf16: " << mnv2::cpu_has_native_bf16() << "\n";
  const bool ok = logits.sizes() == torch::IntArrayRef({2, 10}) &&
                  maps.size() == 4 &&
                  torch::isfinite(logits).all().item<bool>() && error < 1e-4 &&
                  onednn_error < 1e-4;
  return ok ? 0 : 1;
}
