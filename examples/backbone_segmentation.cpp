// MobileNetV2 as the backbone of a model of your own: a small segmentation
// head (an FPN-like sum of the stride 4, 8, 16 and 32 feature maps) on
// forward_feature_maps, trained with a plain LibTorch loop to find the
// bright squares in synthetic images. Pass a weights file (torchvision's
// mobilenet_v2 .pth, or one mnv2-train or mnv2-export wrote) to start the
// backbone from it; without one it starts from scratch.
//
//   backbone_segmentation [WEIGHTS.pth] [--steps N]
//
// Exits 0 when the model learned: the last steps' loss is under half the
// first steps' and, on fresh images, the squares' intersection over union is
// over 0.5.
#include <mobilenetv2/nn/mobilenet_v2.h>
#include <mobilenetv2/weights/load_model.h>

#include <torch/torch.h>

#include <cstdio>
#include <cstring>
#include <string>

namespace {

// Per-pixel class scores from the backbone's maps: each map projected to a
// common width, upsampled to the first map's stride (4) and summed, then a 3x3
// conv and a 1x1 classifier; the scores are upsampled to the input size.
struct SegmentationHeadImpl : torch::nn::Module {
  SegmentationHeadImpl(const std::vector<int64_t>& channels,
                       int64_t width,
                       int64_t classes) {
    for (size_t i = 0; i < channels.size(); ++i) {
      lateral.push_back(register_module(
          "lateral" + std::to_string(i),
          torch::nn::Conv2d(torch::nn::Conv2dOptions(channels[i], width, 1))));
    }
    mix = register_module(
        "mix",
        torch::nn::Conv2d(
            torch::nn::Conv2dOptions(width, width, 3).padding(1)));
    classify = register_module(
        "classify",
        torch::nn::Conv2d(torch::nn::Conv2dOptions(width, classes, 1)));
  }

  torch::Tensor forward(const std::vector<mnv2::FeatureMap>& maps,
                        torch::IntArrayRef output_size) {
    torch::Tensor sum;
    std::vector<int64_t> size;
    for (size_t i = 0; i < maps.size(); ++i) {
      auto x = lateral[i]->forward(maps[i].tensor);
      if (!sum.defined()) {
        sum = x;
        size = {x.size(2), x.size(3)};
        continue;
      }
      sum = sum + torch::nn::functional::interpolate(
                      x,
                      torch::nn::functional::InterpolateFuncOptions()
                          .size(size)
                          .mode(torch::kBilinear)
                          .align_corners(false));
    }
    auto scores = classify->forward(torch::relu(mix->forward(sum)));
    return torch::nn::functional::interpolate(
        scores,
        torch::nn::functional::InterpolateFuncOptions()
            .size(std::vector<int64_t>(output_size.begin(), output_size.end()))
            .mode(torch::kBilinear)
            .align_corners(false));
  }

  std::vector<torch::nn::Conv2d> lateral;
  torch::nn::Conv2d mix{nullptr};
  torch::nn::Conv2d classify{nullptr};
};
TORCH_MODULE(SegmentationHead);

// Images of noise with 1-3 brighter squares; the mask marks the squares.
std::pair<torch::Tensor, torch::Tensor> synthetic_batch(int64_t n,
                                                        int64_t size) {
  auto images = torch::randn({n, 3, size, size}) * 0.5;
  auto masks = torch::zeros({n, size, size}, torch::kLong);
  for (int64_t i = 0; i < n; ++i) {
    const auto squares = torch::randint(1, 4, {1}).item<int64_t>();
    for (int64_t s = 0; s < squares; ++s) {
      const auto side = torch::randint(size / 6, size / 3, {1}).item<int64_t>();
      const auto y = torch::randint(0, size - side, {1}).item<int64_t>();
      const auto x = torch::randint(0, size - side, {1}).item<int64_t>();
      using torch::indexing::Slice;
      images.index({i, Slice(), Slice(y, y + side), Slice(x, x + side)}) += 1.5;
      masks.index({i, Slice(y, y + side), Slice(x, x + side)}) = 1;
    }
  }
  return {images, masks};
}

}  // namespace

int run(int argc, char** argv) {
  std::string weights;
  int64_t steps = 60;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--steps") == 0 && i + 1 < argc) {
      steps = std::stoll(argv[++i]);
    } else {
      weights = argv[i];
    }
  }
  torch::manual_seed(0);
  // The backbone: a pretrained classifier's features, or a fresh one.
  mnv2::MobileNetV2 backbone =
      weights.empty()
          ? mnv2::MobileNetV2(mnv2::MobileNetV2Options().width_mult(0.5))
          : mnv2::load_mobilenet_v2(weights);
  SegmentationHead head(backbone->feature_map_channels(), 32, 2);

  std::vector<torch::Tensor> parameters = backbone->features->parameters();
  for (const auto& p : head->parameters()) {
    parameters.push_back(p);
  }
  torch::optim::AdamW optimizer(parameters, torch::optim::AdamWOptions(2e-3));
  backbone->train();
  head->train();
  const int64_t size = 64;
  double first = 0;
  double last = 0;
  const int64_t window = std::max<int64_t>(1, steps / 6);
  for (int64_t step = 0; step < steps; ++step) {
    auto [images, masks] = synthetic_batch(16, size);
    const auto maps = backbone->forward_feature_maps(images);
    const auto scores = head->forward(maps, {size, size});
    auto loss = torch::nn::functional::cross_entropy(scores, masks);
    optimizer.zero_grad();
    loss.backward();
    optimizer.step();
    const double value = loss.item<double>();
    first += step < window ? value / window : 0;
    last += step >= steps - window ? value / window : 0;
    if (step % 10 == 0 || step == steps - 1) {
      std::printf(
          "step %3lld  loss %.4f\n", static_cast<long long>(step), value);
    }
  }
  backbone->eval();
  head->eval();
  torch::NoGradGuard no_grad;
  auto [images, masks] = synthetic_batch(32, size);
  const auto predicted =
      head->forward(backbone->forward_feature_maps(images), {size, size})
          .argmax(1);
  const auto both = (predicted.eq(1) & masks.eq(1)).sum().item<double>();
  const auto either = (predicted.eq(1) | masks.eq(1)).sum().item<double>();
  const double iou = both / std::max(either, 1.0);
  std::printf("loss %.4f -> %.4f; squares' IoU on fresh images %.3f\n",
              first,
              last,
              iou);
  return last < 0.5 * first && iou > 0.5 ? 0 : 1;
}

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "backbone_segmentation: %s\n", e.what());
    return 1;
  }
}
