// Builds a MobileNetV2 from the installed package and runs one forward pass.
#include <mobilenetv2/mobilenet_v2.h>

#include <torch/torch.h>

#include <iostream>

int main() {
  mnv2::MobileNetV2 model(mnv2::MobileNetV2Options().num_classes(10));
  model->eval();
  torch::NoGradGuard no_grad;
  const auto logits = model->forward(torch::randn({2, 3, 96, 96}));
  const auto maps = model->forward_feature_maps(torch::randn({1, 3, 64, 64}));
  std::cout << "logits " << logits.sizes() << ", " << maps.size()
            << " feature maps\n";
  const bool ok = logits.sizes() == torch::IntArrayRef({2, 10}) &&
                  maps.size() == 4 &&
                  torch::isfinite(logits).all().item<bool>();
  return ok ? 0 : 1;
}
