// The pixel budget bounds the evaluation resize, not only the decoded image:
// a 1 x 200000 strip (under the budget) resized to a shorter side of 256 is
// 13 billion pixels.
#include <mobilenetv2/preprocessing/preprocessing.h>
#include <mobilenetv2/util/data_error.h>

#include <torch/torch.h>
#include <catch2/catch.hpp>

TEST_CASE("an evaluation resize over the pixel budget is refused first",
          "[classifier]") {
  mnv2::EvalTransformOptions options;
  options.resize_size = 256;
  options.crop_size = 224;
  const auto strip = torch::zeros({1, 200000, 3}, torch::kUInt8);
  CHECK_THROWS_WITH(mnv2::eval_resize_crop(strip, options),
                    Catch::Contains("1x200000 resized to a shorter side of "
                                    "256 would be 13107200000 pixels") &&
                        Catch::Contains("over the budget of 178956970"));

  // The process's budget, as --max-image-pixels sets it.
  const auto image = torch::zeros({300, 400, 3}, torch::kUInt8);
  mnv2::set_max_image_pixels(256 * 341 - 1);
  CHECK_THROWS_AS(mnv2::eval_resize_crop(image, options), mnv2::DataError);
  mnv2::set_max_image_pixels(256 * 341);
  CHECK(mnv2::eval_resize_crop(image, options).sizes() ==
        torch::IntArrayRef{224, 224, 3});
  // Squashing resizes to the crop: nothing to bound.
  options.policy = mnv2::ResizePolicy::kSquash;
  CHECK_NOTHROW(mnv2::eval_resize_crop(strip, options));
  mnv2::set_max_image_pixels(mnv2::kDefaultMaxImagePixels);
}
