// Classify photos with any weights file mnv2-eval accepts (a checkpoint, a
// torchvision-style .pth with its .json, Keras' .h5, a TorchScript export)
// and print each photo's labelled top-5, exactly as `mnv2-eval --predict`
// computes it: the same reading, preprocessing and engine.
//
//   classify_photos WEIGHTS PHOTO... [--labels FILE]
//
// --labels names the classes when the weights only number them (Keras' and
// torchvision's ImageNet weights: data/imagenet_classes.txt).
#include <mobilenetv2/classifier/image_classifier.h>
#include <mobilenetv2/vision/vision.h>

#include <cstdio>
#include <exception>
#include <fstream>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  std::vector<std::string> photos;
  mnv2::ClassifierOptions options;
  for (int i = 2; i < argc; ++i) {
    if (std::string(argv[i]) == "--labels" && i + 1 < argc) {
      std::ifstream file(argv[++i]);
      for (std::string line; std::getline(file, line);) {
        options.class_names.push_back(line);
      }
    } else {
      photos.emplace_back(argv[i]);
    }
  }
  if (argc < 3 || photos.empty()) {
    std::fprintf(stderr,
                 "usage: classify_photos WEIGHTS PHOTO... [--labels FILE]\n");
    return 2;
  }
  try {
    const auto classifier = mnv2::ImageClassifier::open(argv[1], options);
    std::printf("%s on %s\n", argv[1], classifier.engine().c_str());
    for (const auto& photo : photos) {
      // Decoded as mnv2-eval decodes for these weights (a large JPEG at a
      // reduced size where the resize allows it).
      const auto image = mnv2::read_image(photo, classifier.eval_transform());
      std::printf("%s\n", photo.c_str());
      for (const auto& p : classifier.classify(image, 5)) {
        std::printf("  %.9f  %s (%lld)\n",
                    p.probability,
                    p.name.c_str(),
                    static_cast<long long>(p.index));
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "classify_photos: %s\n", e.what());
    return 1;
  }
  return 0;
}
