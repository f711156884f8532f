// The `<stem>.json` beside a state_dict: its model information is used, one
// that describes other weights is refused, and its absence is warned about
// with the sizes assumed (a digits model evaluated at ImageNet's 256/224
// scored 17% instead of 98%, silently).
#include "test_support.h"

#include <mobilenetv2/classifier/inference_model.h>
#include <mobilenetv2/torch_files/state_dict.h>
#include <mobilenetv2/weights/checkpoint.h>

#include <catch2/catch.hpp>

#include <fstream>

namespace {

std::string ten_class_weights(const std::filesystem::path& dir) {
  mnv2::MobileNetV2 model(
      mnv2::MobileNetV2Options().num_classes(10).width_mult(0.35));
  const auto path = (dir / "digits.pth").string();
  mnv2::write_state_dict(mnv2::state_dict_of(*model), path);
  return path;
}

}  // namespace

TEST_CASE("a weights sidecar is used, refused when it describes other weights",
          "[classifier]") {
  const auto dir = mnv2::test::fresh_temp_dir("sidecar");
  const auto path = ten_class_weights(dir);
  const auto sidecar = dir / "digits.json";

  SECTION("none: ImageNet's sizes, with a warning naming them") {
    const auto weights = mnv2::load_weights_file(path, false, false);
    CHECK(weights.info.val_resize == 256);
    REQUIRE(weights.warnings.size() == 1);
    CHECK_THAT(weights.warnings[0],
               Catch::Contains("digits.json") &&
                   Catch::Contains("resize 256, crop 224"));
    const auto model = mnv2::InferenceModel::load(path, false, torch::kCPU);
    CHECK(model.warnings() == weights.warnings);
  }
  SECTION("its own: sizes and names taken, no warning") {
    std::ofstream(sidecar) << R"({"num_classes": 10, "val_resize": 48,
                                  "val_crop": 48})";
    const auto weights = mnv2::load_weights_file(path, false, false);
    CHECK(weights.warnings.empty());
    CHECK(weights.info.val_resize == 48);
    CHECK(weights.info.val_crop == 48);
    CHECK(weights.info.class_names.size() == 10);
    CHECK(weights.info.class_names[9] == "9");
  }
  SECTION("another class count: refused, naming both files") {
    std::ofstream(sidecar)
        << R"({"num_classes": 1000, "val_resize": 48, "val_crop": 48})";
    CHECK_THROWS_WITH(mnv2::load_weights_file(path, false, false),
                      Catch::Contains("digits.json' describes 1000 classes") &&
                          Catch::Contains("digits.pth' have 10"));
  }
  SECTION("another number of class names: refused") {
    std::ofstream(sidecar) << R"({"class_names": ["a", "b", "c"]})";
    CHECK_THROWS_WITH(mnv2::load_weights_file(path, false, false),
                      Catch::Contains("describes 3 classes"));
  }
  SECTION("empty or not JSON: refused") {
    std::ofstream(sidecar) << "";
    CHECK_THROWS_WITH(mnv2::load_weights_file(path, false, false),
                      Catch::Contains("digits.json"));
  }
}
