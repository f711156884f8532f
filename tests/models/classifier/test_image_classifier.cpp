// mnv2::ImageClassifier and its vision component against independent
// references: torchvision's transforms and Keras' way of feeding its weights
// (tests/oracle/make_engine_reference.py), the eager network, and itself
// called from one thread.
#include "test_support.h"

#include <mobilenetv2/classifier/image_classifier.h>
#include <mobilenetv2/preprocessing/preprocessing.h>
#include <mobilenetv2/torch_files/state_dict.h>
#include <mobilenetv2/torch_files/torch_file.h>
#include <mobilenetv2/util/data_error.h>
#include <mobilenetv2/vision/vision.h>
#include <mobilenetv2/weights/checkpoint.h>
#include <mobilenetv2/weights/sidecar.h>

#include <torch/torch.h>
#include <catch2/catch.hpp>
#include <opencv2/imgcodecs.hpp>

#include <cstring>
#include <fstream>
#include <thread>

namespace fs = std::filesystem;

namespace {

const char* const kPhotos[] = {"chelsea.png", "rocket.jpg", "coffee.png"};

fs::path photo_dir() {
  return mnv2::test::folder_from_env("MNV2_ORACLE_DIR") / "classifier";
}

// A 10-class MobileNetV2 (random weights, BatchNorm statistics randomised so
// that the outputs differ by image) saved with metadata for `info`.
std::string write_weights(const std::string& name, mnv2::ModelInfo info) {
  torch::manual_seed(3);
  info.options.num_classes(10).width_mult(0.35);
  info.class_names.clear();
  for (int i = 0; i < 10; ++i) {
    info.class_names.push_back("class " + std::to_string(i));
  }
  mnv2::MobileNetV2 model(info.options);
  mnv2::test::randomise_batchnorm(model);
  const auto path =
      (mnv2::test::fresh_temp_dir("classifier_" + name) / "w.pth").string();
  mnv2::write_state_dict(mnv2::state_dict_of(*model), path);
  mnv2::write_weights_metadata(info, path);
  return path;
}

mnv2::ModelInfo torchvision_info() {
  return {};  // 256 / 224, shorter side then centre crop, ImageNet mean/std
}

mnv2::ModelInfo keras_info() {
  mnv2::ModelInfo info;
  info.resize = mnv2::ResizePolicy::kSquash;
  info.val_resize = 224;
  info.normalization = mnv2::kInceptionNormalization;
  return info;
}

torch::Tensor expected(const std::string& key) {
  static const auto dict =
      mnv2::read_torch_file((photo_dir() / "expected.pth").string())
          .toGenericDict();
  return dict.at(key).toTensor();
}

std::string stem(const std::string& file) {
  return file.substr(0, file.find('.'));
}

}  // namespace

TEST_CASE("the classifier's preprocessing equals torchvision's and Keras'",
          "[classifier]") {
  const auto torchvision = mnv2::ImageClassifier::open(
      write_weights("torchvision", torchvision_info()));
  const auto keras =
      mnv2::ImageClassifier::open(write_weights("keras", keras_info()));
  const double grey_level = 1.0 / 255;
  for (const std::string photo : kPhotos) {
    INFO(photo);
    const auto path = (photo_dir() / photo).string();
    const auto ours = torchvision.preprocess(
        mnv2::read_image(path, torchvision.eval_transform()));
    // torchvision's v2 transforms on tensors: the same resampling.
    const auto v2 = (ours - expected(stem(photo) + ".torchvision_v2")).abs();
    CHECK(v2.max().item<double>() < 1e-6);
    // The photo resampled one way, whichever this CPU's torchvision takes.
    const auto one_way = [&](const mnv2::ImageClassifier& classifier,
                             const mnv2::ModelInfo& info,
                             mnv2::Uint8Resampling resampling) {
      auto transform = classifier.eval_transform();
      transform.resampling = resampling;
      return mnv2::normalize_image(
          mnv2::eval_resize_crop(mnv2::read_image(path, transform), transform),
          mnv2::ColorOrder::kRgb,
          info.normalization);
    };
    for (const auto& [way, resampling] :
         {std::pair{"uint8", mnv2::Uint8Resampling::kUint8Kernel},
          std::pair{"float", mnv2::Uint8Resampling::kFloatRounded}}) {
      CAPTURE(way);
      const auto taken = one_way(torchvision, torchvision_info(), resampling);
      const auto reference =
          expected(stem(photo) + ".torchvision_v2_" + std::string(way));
      CHECK((taken - reference).abs().max().item<double>() < 1e-6);
    }
    // Its PIL pipeline: within one grey level (divided by the std). ATen's
    // uint8 kernel rounds as PIL does almost everywhere; resampling in float
    // (torchvision's way on CPUs without AVX2) misses by a grey level at
    // about one value in five (mean 2-3e-3).
    const auto uint8_way = mnv2::Uint8Resampling::kUint8Kernel;
    const auto pil_reference = expected(stem(photo) + ".torchvision_pil");
    const auto pil = (ours - pil_reference).abs();
    CHECK(pil.max().item<double>() <= 1.001 * grey_level / 0.224);
    CHECK((one_way(torchvision, torchvision_info(), uint8_way) - pil_reference)
              .abs()
              .mean()
              .item<double>() < 1e-3);
    // Keras: the whole photo squashed, x / 127.5 - 1.
    const auto squashed =
        keras.preprocess(mnv2::read_image(path, keras.eval_transform()));
    REQUIRE(squashed.sizes() == torch::IntArrayRef({3, 224, 224}));
    const auto keras_reference = expected(stem(photo) + ".keras");
    const auto k = (squashed - keras_reference).abs();
    CHECK(k.max().item<double>() <= 1.001 * grey_level / 0.5);
    CHECK((one_way(keras, keras_info(), uint8_way) - keras_reference)
              .abs()
              .mean()
              .item<double>() < 1e-3);
    std::cout << photo << ": vs torchvision v2 max " << v2.max().item<double>()
              << "; vs PIL max " << pil.max().item<double>() << " mean "
              << pil.mean().item<double>() << "; vs Keras max "
              << k.max().item<double>() << " mean " << k.mean().item<double>()
              << "\n";
  }
}

TEST_CASE("every input form gives the same answer", "[classifier]") {
  const auto classifier =
      mnv2::ImageClassifier::open(write_weights("forms", torchvision_info()));
  const auto path = (photo_dir() / "rocket.jpg").string();
  const auto rgb = mnv2::read_image(path, classifier.eval_transform());
  const auto reference = classifier.classify(rgb, 3);
  REQUIRE(reference.size() == 3);
  CHECK(reference[0].probability >= reference[1].probability);
  CHECK(reference[0].name == "class " + std::to_string(reference[0].index));
  // Equal to the eager network on the preprocessed photo.
  auto eager = classifier.model().eager();
  torch::NoGradGuard no_grad;
  const auto direct = torch::softmax(
      eager->forward(classifier.preprocess(rgb).unsqueeze(0)), 1)[0];
  CHECK(direct[reference[0].index].item<double>() ==
        Approx(reference[0].probability).epsilon(1e-4));
  CHECK(direct.argmax().item<int64_t>() == reference[0].index);

  // Bit for bit, except in a batch of another size (other blocking).
  const auto same = [&](const std::vector<mnv2::Prediction>& other,
                        double tolerance = 0) {
    REQUIRE(other.size() == reference.size());
    for (size_t i = 0; i < other.size(); ++i) {
      CHECK(other[i].index == reference[i].index);
      CHECK(std::abs(other[i].probability - reference[i].probability) <=
            tolerance);
    }
  };
  // BGR, as OpenCV holds it: the tensor flipped, and a cv::Mat.
  same(
      classifier.classify(rgb.flip(2).contiguous(), 3, mnv2::ColorOrder::kBgr));
  same(mnv2::classify(classifier, cv::imread(path), 3));
  // A buffer with padded rows.
  const int64_t stride = rgb.size(1) * 3 + 13;
  std::vector<uint8_t> padded(static_cast<size_t>(rgb.size(0) * stride), 0);
  for (int64_t row = 0; row < rgb.size(0); ++row) {
    std::memcpy(padded.data() + row * stride,
                rgb[row].data_ptr<uint8_t>(),
                static_cast<size_t>(rgb.size(1) * 3));
  }
  same(classifier.classify(
      mnv2::ImageView{padded.data(), rgb.size(0), rgb.size(1), 3, stride}, 3));
  // Files, batched with others.
  const auto files = mnv2::classify_files(
      classifier, {(photo_dir() / "chelsea.png").string(), path}, 3);
  same(files[1], 1e-6);
  // The embedding and the feature maps of the same input.
  const auto x = classifier.preprocess(rgb).unsqueeze(0);
  CHECK(torch::allclose(
      classifier.embed({rgb}), eager->forward_embedding(x), 1e-4, 1e-5));
  const auto maps = classifier.feature_maps(rgb);
  REQUIRE(maps.size() == 4);
  CHECK(maps[0].stride == 4);
  CHECK(maps[3].stride == 32);
  CHECK(maps[3].tensor.sizes() ==
        torch::IntArrayRef({1, eager->last_channel(), 7, 7}));
}

TEST_CASE("concurrent callers get what one caller gets", "[classifier]") {
  const auto classifier =
      mnv2::ImageClassifier::open(write_weights("threads", torchvision_info()));
  std::vector<torch::Tensor> images;
  std::vector<std::vector<mnv2::Prediction>> serial;
  for (const std::string photo : kPhotos) {
    images.push_back(mnv2::read_image((photo_dir() / photo).string(),
                                      classifier.eval_transform()));
    serial.push_back(classifier.classify(images.back(), 5));
  }
  constexpr int kThreads = 4;
  constexpr int kRounds = 3;
  std::vector<std::vector<std::vector<mnv2::Prediction>>> answers(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int r = 0; r < kRounds; ++r) {
        answers[t].push_back(classifier.classify(images[(t + r) % 3], 5));
      }
    });
  }
  for (auto& thread : threads) {
    thread.join();
  }
  for (int t = 0; t < kThreads; ++t) {
    for (int r = 0; r < kRounds; ++r) {
      const auto& expected_top = serial[(t + r) % 3];
      const auto& got = answers[t][r];
      REQUIRE(got.size() == expected_top.size());
      for (size_t i = 0; i < got.size(); ++i) {
        CHECK(got[i].index == expected_top[i].index);
        CHECK(got[i].probability == expected_top[i].probability);
      }
    }
  }
}

TEST_CASE("bad inputs get one clear error each", "[classifier]") {
  const auto weights = write_weights("bad", torchvision_info());
  const auto classifier = mnv2::ImageClassifier::open(weights);
  using Catch::Matchers::Contains;
  const auto image = torch::zeros({40, 50, 3}, torch::kUInt8);
  CHECK_THROWS_WITH(
      classifier.classify(torch::zeros({0, 50, 3}, torch::kUInt8)),
      Contains("is empty"));
  CHECK_THROWS_WITH(
      classifier.classify(torch::zeros({40, 50, 1}, torch::kUInt8)),
      Contains("must have 3 channels") && Contains("got 1"));
  CHECK_THROWS_WITH(
      classifier.classify(torch::zeros({40, 50, 4}, torch::kUInt8)),
      Contains("must have 3 channels") && Contains("got 4"));
  CHECK_THROWS_WITH(classifier.classify(image.to(torch::kInt16)),
                    Contains("8-bit"));
  CHECK_THROWS_WITH(classifier.classify(torch::zeros({40, 50}, torch::kUInt8)),
                    Contains("height x width x 3"));
  CHECK_THROWS_AS(classifier.classify(mnv2::ImageView{}), mnv2::DataError);
  std::vector<uint8_t> pixels(40 * 50 * 4);
  CHECK_THROWS_WITH(
      classifier.classify(mnv2::ImageView{pixels.data(), 40, 50, 4}),
      Contains("3 channels"));
  CHECK_THROWS_WITH(mnv2::classify(classifier, cv::Mat()), Contains("empty"));
  CHECK_THROWS_WITH(mnv2::classify(classifier, cv::Mat(40, 50, CV_16UC3)),
                    Contains("8-bit") && Contains("16-bit"));
  CHECK_THROWS_WITH(mnv2::classify(classifier, cv::Mat(40, 50, CV_8UC1)),
                    Contains("got 1"));
  CHECK_THROWS_WITH(mnv2::classify(classifier, cv::Mat(40, 50, CV_8UC4)),
                    Contains("got 4"));
  const auto folder = mnv2::test::fresh_temp_dir("classifier_bad_files");
  const auto text = (folder / "notes.png").string();
  std::ofstream(text) << "not an image";
  CHECK_THROWS_WITH(mnv2::read_image(text, classifier.eval_transform()),
                    Contains("notes.png"));
  CHECK_THROWS_AS(mnv2::read_image(text, classifier.eval_transform()),
                  mnv2::DataError);
  // Weights files of the wrong kind: an image, a JSON file, a backbone
  // without a classifier.
  CHECK_THROWS_WITH(mnv2::ImageClassifier::open(text), Contains("notes.png"));
  CHECK_THROWS_AS(mnv2::ImageClassifier::open(text), mnv2::WeightsError);
  const auto json = fs::path(weights).replace_extension(".json").string();
  CHECK_THROWS_AS(mnv2::ImageClassifier::open(json), mnv2::WeightsError);
  auto features = mnv2::read_state_dict(weights);
  features.erase("classifier.1.weight");
  features.erase("classifier.1.bias");
  const auto backbone = (folder / "backbone.pth").string();
  mnv2::write_state_dict(features, backbone);
  CHECK_THROWS_WITH(mnv2::ImageClassifier::open(backbone),
                    Contains("without a classifier"));
  CHECK_THROWS_AS(classifier.classify(image, 0), std::invalid_argument);
  mnv2::ClassifierOptions names;
  names.class_names = {"only", "three", "names"};
  CHECK_THROWS_WITH(mnv2::ImageClassifier::open(weights, names),
                    Contains("3 class names") && Contains("10 classes"));
}
