#include "test_support.h"

#include <mobilenetv2/nn/mobilenet_v2.h>
#include <mobilenetv2/torch_files/load_weights.h>
#include <mobilenetv2/torch_files/state_dict.h>
#include <mobilenetv2/torch_files/torch_file.h>
#include <mobilenetv2/weights/load_model.h>

#include <catch2/catch.hpp>

#include <fstream>

using mnv2::LoadMode;
using mnv2::MobileNetV2;
using mnv2::MobileNetV2Options;
using mnv2::WeightsError;

namespace {

void write_bytes(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

std::string read_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

}  // namespace

TEST_CASE("weights round-trip through our own writer and reader", "[weights]") {
  const auto dir = mnv2::test::fresh_temp_dir("roundtrip");
  MobileNetV2 model(MobileNetV2Options().width_mult(0.75).num_classes(13));
  const auto path = (dir / "w.pth").string();
  mnv2::write_state_dict(mnv2::state_dict_of(*model), path);
  const auto state = mnv2::read_state_dict(path);
  const auto original = mnv2::state_dict_of(*model);
  REQUIRE(state.keys() == original.keys());
  for (const auto& item : original) {
    CHECK(torch::equal(state[item.key()], item.value()));
    CHECK(state[item.key()].scalar_type() == item.value().scalar_type());
  }
  const auto options = mnv2::infer_options(state);
  CHECK(options.width_mult() == 0.75);
  CHECK(options.num_classes() == 13);
  // Nothing but the file itself is left in the folder (no temporary files).
  CHECK(std::distance(std::filesystem::directory_iterator(dir),
                      std::filesystem::directory_iterator()) == 1);
}

TEST_CASE("bad weight files give one clear error naming the file",
          "[weights]") {
  const auto dir = mnv2::test::fresh_temp_dir("badfiles");
  const auto good = dir / "good.pth";
  mnv2::write_state_dict(
      mnv2::state_dict_of(*MobileNetV2(MobileNetV2Options().num_classes(3))),
      good.string());

  auto expect_error = [](const std::filesystem::path& path,
                         const std::string& fragment) {
    INFO(path.string());
    try {
      mnv2::load_mobilenet_v2(path.string());
      FAIL("no error for " << path);
    } catch (const WeightsError& e) {
      const std::string message = e.what();
      CHECK_THAT(message, Catch::Contains(path.string()));
      CHECK_THAT(message, Catch::Contains(fragment));
      CHECK(message.find('\n') == std::string::npos);
    }
  };

  expect_error(dir / "missing.pth", "does not exist");
  write_bytes(dir / "empty.pth", "");
  expect_error(dir / "empty.pth", "is empty");
  write_bytes(dir / "text.pth", "this is not a pickle\n");
  expect_error(dir / "text.pth", "not a zip archive");
  expect_error(dir, "is a directory");

  const auto bytes = read_bytes(good);
  for (double fraction : {0.9, 0.5, 0.1, 0.01}) {
    const auto cut = dir / ("truncated" + std::to_string(fraction) + ".pth");
    write_bytes(
        cut,
        bytes.substr(
            0,
            static_cast<size_t>(static_cast<double>(bytes.size()) * fraction)));
    expect_error(cut, "corrupt or truncated");
  }
  // Bytes flipped in the middle of the archive (the zip checks CRCs).
  auto corrupt = bytes;
  for (size_t i = corrupt.size() / 3; i < corrupt.size() / 3 + 64; ++i) {
    corrupt[i] = static_cast<char>(~corrupt[i]);
  }
  write_bytes(dir / "corrupt.pth", corrupt);
  expect_error(dir / "corrupt.pth", "corrupt");

  // A valid torch file that is not a state_dict.
  mnv2::write_torch_file(c10::IValue(int64_t{42}), (dir / "int.pth").string());
  expect_error(dir / "int.pth", "not a dict of tensors");
}

TEST_CASE("missing, unexpected and mis-shaped keys are reported by name",
          "[weights]") {
  MobileNetV2 model(MobileNetV2Options().num_classes(10));
  auto state = mnv2::state_dict_of(*model);

  SECTION("missing") {
    auto partial = state;
    partial.erase("features.5.conv.1.0.weight");
    CHECK_THROWS_WITH(
        mnv2::load_weights(*model, partial),
        Catch::Contains("missing keys (1): features.5.conv.1.0.weight"));
  }
  SECTION("unexpected") {
    auto extra = state;
    extra.insert("head.extra.weight", torch::zeros({2}));
    CHECK_THROWS_WITH(
        mnv2::load_weights(*model, extra),
        Catch::Contains("unexpected keys (1): head.extra.weight"));
  }
  SECTION("mis-shaped, and non-strict fine-tuning with a new head") {
    MobileNetV2 other(MobileNetV2Options().num_classes(4));
    CHECK_THROWS_WITH(mnv2::load_weights(*other, state),
                      Catch::Contains("classifier.1.weight: model [4, 1280] "
                                      "vs file [10, 1280]"));
    const auto report = mnv2::load_weights(*other, state, LoadMode::kNonStrict);
    CHECK(report.missing.empty());
    CHECK(report.unexpected.empty());
    CHECK(report.mismatched.size() == 2);
    CHECK(torch::equal(other->features->parameters().front(),
                       model->features->parameters().front()));
  }
  SECTION("another width") {
    MobileNetV2 narrow(MobileNetV2Options().num_classes(10).width_mult(0.5));
    CHECK_THROWS_WITH(mnv2::load_weights(*narrow, state),
                      Catch::Contains("mis-shaped keys"));
  }
}

TEST_CASE("infer_options reads width and classes from the shapes",
          "[weights]") {
  for (double width : {0.35, 0.5, 0.75, 1.0, 1.3, 1.4}) {
    MobileNetV2 model(MobileNetV2Options().width_mult(width).num_classes(21));
    const auto options = mnv2::infer_options(mnv2::state_dict_of(*model));
    CHECK(options.num_classes() == 21);
    // Equal channels at every layer, whatever the spelling of the width.
    MobileNetV2 rebuilt(options);
    CHECK(mnv2::load_weights(*rebuilt, mnv2::state_dict_of(*model)).exact());
  }
  auto state = mnv2::state_dict_of(*MobileNetV2());
  state.erase("features.0.0.weight");
  CHECK_THROWS_WITH(mnv2::infer_options(state, "x.pth"),
                    Catch::Contains("no 'features.0.0.weight'"));
}

TEST_CASE("writing into a missing folder fails cleanly", "[weights]") {
  const auto dir = mnv2::test::fresh_temp_dir("unwritable");
  const auto target = dir / "no" / "such" / "folder" / "w.pth";
  CHECK_THROWS_AS(mnv2::write_state_dict(mnv2::state_dict_of(*MobileNetV2()),
                                         target.string()),
                  WeightsError);
  CHECK_FALSE(std::filesystem::exists(target));
}

TEST_CASE("load_mobilenet_v2 builds the padding and epsilon its metadata names",
          "[weights]") {
  const auto dir = mnv2::test::fresh_temp_dir("tf-metadata");
  torch::manual_seed(3);
  MobileNetV2 keras_like(MobileNetV2Options()
                             .num_classes(4)
                             .width_mult(0.35)
                             .padding(mnv2::Padding::kTfSame)
                             .bn_eps(1e-3));
  keras_like->eval();
  const auto path = dir / "keras.pth";
  mnv2::write_state_dict(mnv2::state_dict_of(*keras_like), path.string());
  // Without metadata: torchvision's padding and epsilon.
  auto plain = mnv2::load_mobilenet_v2(path.string());
  CHECK(plain->options.padding() == mnv2::Padding::kTorch);
  CHECK(plain->options.bn_eps() == 1e-5);
  // The fields as mnv2-export writes them (nlohmann's dump(1) layout).
  std::ofstream(dir / "keras.json")
      << "{\n \"architecture\": \"mobilenet_v2\",\n \"bn_eps\": 0.001,\n"
         " \"padding\": \"tf_same\",\n \"width_mult\": 0.35\n}\n";
  auto loaded = mnv2::load_mobilenet_v2(path.string());
  CHECK(loaded->options.padding() == mnv2::Padding::kTfSame);
  CHECK(loaded->options.bn_eps() == 1e-3);
  torch::NoGradGuard no_grad;
  const auto x = torch::randn({2, 3, 64, 64});
  CHECK(torch::equal(loaded->forward(x), keras_like->forward(x)));
  CHECK_FALSE(torch::allclose(plain->forward(x), keras_like->forward(x)));

  std::ofstream(dir / "keras.json") << "{\"padding\": \"same\"}";
  CHECK_THROWS_WITH(mnv2::load_mobilenet_v2(path.string()),
                    Catch::Contains("keras.json") &&
                        Catch::Contains("padding must be torch or tf_same"));
}
