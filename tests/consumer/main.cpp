// Builds a MobileNetV2 from the installed package, runs it, and runs its
// fused inference form.
#include <mobilenetv2/fused_mobilenet_v2.h>
#include <mobilenetv2/mobilenet_v2.h>

#include <torch/torch.h>

#include <iostream>

int main() {
  mnv2::MobileNetV2 model(mnv2::MobileNetV2Options().num_classes(10));
  model->eval();
  torch::NoGradGuard no_grad;
  const auto images = torch::randn({2, 3, 96, 96});
  const auto logits = model->forward(images);
  const auto maps = model->forward_feature_maps(torch::randn({1, 3, 64, 64}));
  const mnv2::FusedMobileNetV2 fused(model);
  fused.forward(images);  // the first call profiles the graph
  const auto fused_logits = fused.forward(images);
  const double error = (fused_logits - logits).abs().max().item<double>() /
                       logits.abs().max().item<double>();
  std::cout << "logits " << logits.sizes() << ", " << maps.size()
            << " feature maps, fused engine relative error " << error
            << ", native bf16: " << mnv2::cpu_has_native_bf16() << "\n";
  const bool ok = logits.sizes() == torch::IntArrayRef({2, 10}) &&
                  maps.size() == 4 &&
                  torch::isfinite(logits).all().item<bool>() && error < 1e-4;
  return ok ? 0 : 1;
}
