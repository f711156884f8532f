// Data pipeline: dataset discovery, decoding, torchvision geometry, loader.
#include "test_support.h"

#include <mobilenetv2/vision/image_decode.h>
#include <mobilenetv2/vision/image_header.h>
#include "common/errors.h"
#include "data/data_loader.h"
#include "data/dataset.h"
#include "data/network_input.h"
#include "data/sampler.h"
#include "data/transforms.h"
#include "data/trivial_augment.h"

#include <mobilenetv2/torch_files/torch_file.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <bit>
#include <fstream>
#include <numeric>
#include <set>

namespace fs = std::filesystem;

namespace {

// Read once and kept: the tests loop over its members, and a range-for over
// a member of a returned temporary would iterate a destroyed object (before
// C++23; here it iterated nothing, and the loops checked nothing).
const nlohmann::json& engine_reference() {
  static const nlohmann::json reference = [] {
    const auto dir = mnv2::test::folder_from_env("MNV2_ORACLE_DIR");
    std::ifstream in(dir / "engine_reference.json");
    if (!in.good()) {
      throw std::runtime_error("no engine_reference.json in " + dir.string());
    }
    return nlohmann::json::parse(in);
  }();
  return reference;
}

// A small ImageFolder of solid-colour PNGs: class k has value 40 * k.
fs::path make_image_folder(const std::string& name,
                           int classes,
                           int per_class,
                           int size = 20) {
  const auto root = mnv2::test::fresh_temp_dir(name);
  for (int k = 0; k < classes; ++k) {
    fs::create_directories(root / ("class" + std::to_string(k)));
    for (int i = 0; i < per_class; ++i) {
      cv::Mat image(
          size, size + i, CV_8UC3, cv::Scalar(40 * k, 40 * k, 40 * k));
      cv::imwrite((root / ("class" + std::to_string(k)) /
                   ("img" + std::to_string(i) + ".png"))
                      .string(),
                  image);
    }
  }
  return root;
}

std::vector<mnv2::Batch> one_epoch(mnv2::DataLoader& loader, int64_t epoch) {
  loader.start_epoch(epoch);
  std::vector<mnv2::Batch> batches;
  while (auto batch = loader.next()) {
    batches.push_back(*batch);
  }
  return batches;
}

}  // namespace

TEST_CASE(
    "ImageFolder sorts classes as torchvision and finds images case-blind",
    "[data]") {
  const auto root = mnv2::test::fresh_temp_dir("imagefolder");
  for (const auto* cls : {"b", "B", "a", "a b", "_x"}) {
    fs::create_directories(root / cls);
    cv::imwrite((root / cls / "one.PNG").string(), cv::Mat(4, 4, CV_8UC3));
  }
  std::ofstream(root / "a" / "notes.txt") << "not an image";
  cv::imwrite((root / "a" / "two.JpEg").string(), cv::Mat(4, 4, CV_8UC3));
  const auto dataset = mnv2::load_image_folder(root.string());
  // Python's sorted(): code-point order.
  CHECK(dataset.class_names ==
        std::vector<std::string>{"B", "_x", "a", "a b", "b"});
  CHECK(dataset.samples.size() == 6);
  CHECK(dataset.samples[2].label == 2);
  CHECK(fs::path(dataset.samples[2].path).filename() == "one.PNG");
  CHECK(fs::path(dataset.samples[3].path).filename() == "two.JpEg");
}

TEST_CASE("dataset errors name the path and line", "[data]") {
  const auto root = mnv2::test::fresh_temp_dir("dataset-errors");
  CHECK_THROWS_WITH(mnv2::open_dataset((root / "missing").string()),
                    Catch::Contains("does not exist"));
  CHECK_THROWS_WITH(mnv2::load_image_folder(root.string()),
                    Catch::Contains("has no class folders"));
  fs::create_directories(root / "cat");
  CHECK_THROWS_WITH(mnv2::load_image_folder(root.string()),
                    Catch::Contains("cat' has no images"));
  std::ofstream(root / "list.txt") << "# comment\n\na.png 0\nb.png x\n";
  CHECK_THROWS_WITH(mnv2::load_list_file((root / "list.txt").string()),
                    Catch::Contains("list.txt:4: label 'x'"));
  std::ofstream(root / "list2.txt") << "a.png 0\njustapath\n";
  CHECK_THROWS_WITH(mnv2::load_list_file((root / "list2.txt").string()),
                    Catch::Contains("list2.txt:2: expected '<path> <label>'"));
  // A label that would size a 100-million-class head: refused by line.
  std::ofstream(root / "huge.txt") << "a.png 1\nb.png 100000000\n";
  CHECK_THROWS_WITH(
      mnv2::load_list_file((root / "huge.txt").string()),
      Catch::Contains("huge.txt:2: label 100000000 is beyond 99999"));
  std::ofstream(root / "empty.txt") << "\n";
  CHECK_THROWS_WITH(mnv2::load_list_file((root / "empty.txt").string()),
                    Catch::Contains("lists no images"));
}

TEST_CASE("list files resolve paths beside the list, names from classes.txt",
          "[data]") {
  const auto root = mnv2::test::fresh_temp_dir("listfile");
  std::ofstream(root / "list.txt") << "img one.png 1\nsub/two.png 0\n";
  std::ofstream(root / "classes.txt") << "zero\none\n";
  const auto dataset = mnv2::load_list_file((root / "list.txt").string());
  REQUIRE(dataset.samples.size() == 2);
  CHECK(dataset.samples[0].path == (root / "img one.png").string());
  CHECK(dataset.samples[0].label == 1);
  CHECK(dataset.class_names == std::vector<std::string>{"zero", "one"});
}

TEST_CASE("decoding gives 8-bit RGB as PIL's convert('RGB') does", "[data]") {
  const auto dir = mnv2::test::folder_from_env("MNV2_ORACLE_DIR") / "images";
  for (const auto& name : engine_reference()["images"]) {
    INFO(name);
    const auto path = dir / name.get<std::string>();
    const cv::Mat rgb = mnv2::decode_rgb(path.string());
    const auto expected = mnv2::read_torch_file(path.string() + ".expected.pth")
                              .toGenericDict()
                              .at("pixels")
                              .toTensor();
    REQUIRE(rgb.type() == CV_8UC3);
    REQUIRE(rgb.rows == expected.size(0));
    REQUIRE(rgb.cols == expected.size(1));
    const auto actual =
        torch::from_blob(rgb.data, {rgb.rows, rgb.cols, 3}, torch::kUInt8);
    const auto diff = (actual.to(torch::kInt) - expected.to(torch::kInt)).abs();
    // JPEG and lossy WebP decoders (PIL bundles its own libwebp) differ by a
    // level or two; lossless formats agree exactly.
    const auto& file = name.get<std::string>();
    const int tolerance =
        file.ends_with(".jpg") || file.ends_with("lossy.webp") ? 3 : 0;
    INFO("max difference " << diff.max().item<int>());
    CHECK(diff.max().item<int>() <= tolerance);
  }
}

TEST_CASE("bad image files are errors naming the file", "[data]") {
  const auto dir = mnv2::test::fresh_temp_dir("bad-images");
  std::ofstream(dir / "empty.png");
  std::ofstream(dir / "text.jpg") << "definitely not a jpeg";
  cv::Mat image(64, 64, CV_8UC3, cv::Scalar(10, 200, 30));
  std::vector<uchar> jpeg;
  cv::imencode(".jpg", image, jpeg);
  std::ofstream(dir / "truncated.jpg", std::ios::binary)
      .write(reinterpret_cast<const char*>(jpeg.data()),
             static_cast<std::streamsize>(jpeg.size() / 2));
  for (const auto* name :
       {"empty.png", "text.jpg", "truncated.jpg", "gone.png"}) {
    INFO(name);
    CHECK_THROWS_AS(mnv2::decode_rgb((dir / name).string()), mnv2::DataError);
    CHECK_THROWS_WITH(mnv2::decode_rgb((dir / name).string()),
                      Catch::Contains(name));
  }
}

TEST_CASE("image headers give the stored size before decoding", "[data]") {
  // PIL wrote every oracle image at 37x23 (rotated.jpg displays as 23x37,
  // but stores 37x23).
  const auto dir = mnv2::test::folder_from_env("MNV2_ORACLE_DIR") / "images";
  for (const auto& name : engine_reference()["images"]) {
    INFO(name);
    std::ifstream in(dir / name.get<std::string>(), std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)),
                            std::istreambuf_iterator<char>());
    const auto header = mnv2::read_image_header(bytes);
    REQUIRE(header.has_value());
    CHECK(header->width == 37);
    CHECK(header->height == 23);
  }
  CHECK_FALSE(mnv2::read_image_header("GIF89a....").has_value());
  CHECK_FALSE(mnv2::read_image_header("").has_value());
  CHECK_FALSE(mnv2::read_image_header("\xFF\xD8 not really").has_value());
}

TEST_CASE("the pixel budget refuses images before decoding", "[data]") {
  struct Restore {
    ~Restore() {
      mnv2::set_max_image_pixels(mnv2::kDefaultMaxImagePixels);
    }
  } restore;
  CHECK(mnv2::max_image_pixels() == 178956970);  // PIL's default
  const auto dir = mnv2::test::folder_from_env("MNV2_ORACLE_DIR") / "images";
  for (const auto& name : engine_reference()["images"]) {
    INFO(name);
    const auto path = (dir / name.get<std::string>()).string();
    mnv2::set_max_image_pixels(37 * 23 - 1);
    CHECK_THROWS_WITH(mnv2::decode_rgb(path),
                      Catch::Contains(name.get<std::string>()) &&
                          Catch::Contains("37x23 pixels, over the budget "
                                          "of 850"));
    mnv2::set_max_image_pixels(37 * 23);
    CHECK(mnv2::decode_rgb(path).total() == 37 * 23);
  }
  CHECK_THROWS_AS(mnv2::set_max_image_pixels(0), std::invalid_argument);
}

TEST_CASE("JPEG reductions keep the pixels the transforms need", "[data]") {
  // Hand-computed: libjpeg's reduced sizes are ceil(side / reduction).
  const mnv2::EvalTransformOptions torchvision{256, 224};
  CHECK(mnv2::eval_jpeg_reduction(4000, 3000, torchvision) == 8);  // 375
  CHECK(mnv2::eval_jpeg_reduction(1024, 768, torchvision) == 2);   // 384
  CHECK(mnv2::eval_jpeg_reduction(640, 480, torchvision) == 1);    // 240 < 256
  CHECK(mnv2::eval_jpeg_reduction(510, 700, torchvision) == 1);    // 255
  CHECK(mnv2::eval_jpeg_reduction(511, 700, torchvision) == 2);    // 256
  const mnv2::EvalTransformOptions squash{
      256, 224, mnv2::ResizePolicy::kSquash};
  CHECK(mnv2::eval_jpeg_reduction(600, 447, squash) == 2);  // 224
  CHECK(mnv2::eval_jpeg_reduction(600, 446, squash) == 1);  // 223
  // Training at 224 (scale 0.08, ratio 3/4-4/3): the smallest crop of a
  // 4000x3000 photo has a shorter side of sqrt(0.08 * 12e6 * 3/4) = 848.5.
  const mnv2::TrainTransformOptions train;
  CHECK(mnv2::train_jpeg_reduction(4000, 3000, train) == 2);  // 425, 213
  CHECK(mnv2::train_jpeg_reduction(500, 375, train) == 1);
  mnv2::TrainTransformOptions large_crops;
  large_crops.scale_min = 0.2;  // 1341.6: 336 at 1/4, 168 at 1/8
  CHECK(mnv2::train_jpeg_reduction(4000, 3000, large_crops) == 4);
}

TEST_CASE("reduced-size JPEG decoding stays close to the full decode",
          "[data]") {
  // A real photograph enlarged to phone size (4000x3000) and saved as JPEG.
  const auto photo =
      cv::imread((mnv2::test::folder_from_env("MNV2_ORACLE_DIR") / "pipeline" /
                  "photo.png")
                     .string());
  REQUIRE_FALSE(photo.empty());
  cv::Mat phone;
  cv::resize(photo, phone, cv::Size(4000, 3000), 0, 0, cv::INTER_CUBIC);
  const auto path = mnv2::test::fresh_temp_dir("phone") / "phone.jpg";
  cv::imwrite(path.string(), phone, {cv::IMWRITE_JPEG_QUALITY, 95});
  for (const auto& options :
       {mnv2::EvalTransformOptions{256, 224},
        mnv2::EvalTransformOptions{256, 224, mnv2::ResizePolicy::kSquash}}) {
    const auto full =
        mnv2::eval_transform(mnv2::decode_rgb(path.string()), options);
    int reduction = 0;
    const auto reduced = mnv2::eval_transform(
        mnv2::decode_rgb(path.string(),
                         [&](int64_t width, int64_t height) {
                           reduction = mnv2::eval_jpeg_reduction(
                               width, height, options);
                           return reduction;
                         }),
        options);
    CHECK(reduction == 8);  // 3000 / 8 = 375 >= 256
    REQUIRE(reduced.size == full.size);
    cv::Mat diff;
    cv::absdiff(full, reduced, diff);
    double largest = 0;
    cv::minMaxLoc(diff.reshape(1), nullptr, &largest);
    const double mean = cv::mean(diff.reshape(1))[0];
    std::cout << "reduced (1/" << reduction << ") vs full JPEG decode, "
              << mnv2::resize_policy_name(options.policy) << ": mean abs diff "
              << mean << ", max " << largest << " grey levels\n";
    // Measured: mean 0.44 and 0.34, max 5 and 4 (2026-11-27, antialiased
    // bilinear; 0.86 / 0.51 and 9 / 8 with OpenCV's area resize before).
    CHECK(mean < 1.5);
    CHECK(largest < 24);
  }
}

TEST_CASE("eval geometry equals torchvision's Resize + CenterCrop", "[data]") {
  for (const auto& c : engine_reference()["eval_boxes"]) {
    INFO(c.dump());
    const auto [h, w] =
        mnv2::resized_shorter_side(c["height"], c["width"], c["resize"]);
    CHECK(h == c["resized_height"].get<int>());
    CHECK(w == c["resized_width"].get<int>());
    const auto box = mnv2::center_crop_box(h, w, c["crop"], c["crop"]);
    CHECK(box.top == c["top"].get<int>());
    CHECK(box.left == c["left"].get<int>());
  }
}

TEST_CASE("eval pixels agree with torchvision's PIL pipeline", "[data]") {
  const auto dir = mnv2::test::folder_from_env("MNV2_ORACLE_DIR") / "pipeline";
  const auto expected =
      mnv2::read_torch_file((dir / "photo.expected.pth").string())
          .toGenericDict()
          .at("tensor")
          .toTensor();
  const auto decoded = mnv2::decode_rgb((dir / "photo.png").string());
  const auto pixels = [&](mnv2::Uint8Resampling resampling) {
    mnv2::EvalTransformOptions options{256, 224};
    options.resampling = resampling;
    const auto image = mnv2::eval_transform(decoded, options);
    auto nhwc = torch::from_blob(image.data, {1, 224, 224, 3}, torch::kUInt8);
    return mnv2::normalize_images(nhwc.permute({0, 3, 1, 2}), torch::kCPU)[0];
  };
  // At most one grey level (1 / 255 / 0.224 = 0.0175 normalised units) the
  // way torchvision resamples on this CPU; with ATen's uint8 antialiased
  // bilinear, rarely (measured: mean 2.2e-5, max 0.0175). Resampling in
  // float (torchvision's way where ATen has no AVX2 kernels) misses PIL at
  // about one value in five.
  const auto ours = pixels(mnv2::Uint8Resampling::kAsTorchvision);
  CHECK((ours - expected).abs().max().item<double>() < 1.01 / 255 / 0.224);
  const auto diff =
      (pixels(mnv2::Uint8Resampling::kUint8Kernel) - expected).abs();
  std::cout << "eval pipeline vs torchvision: mean abs diff "
            << diff.mean().item<double>() << ", max "
            << diff.max().item<double>() << " (normalised units)\n";
  CHECK(diff.mean().item<double>() < 1e-4);
  CHECK(diff.max().item<double>() < 1.01 / 255 / 0.224);
}

TEST_CASE("RandomResizedCrop samples as torchvision's get_params", "[data]") {
  mnv2::TrainTransformOptions options;
  std::mt19937_64 rng(1);
  for (const auto& c : engine_reference()["random_resized_crop"]) {
    INFO(c.dump());
    const int h = c["height"];
    const int w = c["width"];
    const int n = c["draws"];
    std::vector<double> areas;
    std::vector<double> log_ratios;
    for (int i = 0; i < n; ++i) {
      const auto box = mnv2::random_resized_crop_box(h, w, options, rng);
      REQUIRE(box.top >= 0);
      REQUIRE(box.left >= 0);
      REQUIRE(box.top + box.height <= h);
      REQUIRE(box.left + box.width <= w);
      areas.push_back(static_cast<double>(box.height) * box.width / (h * w));
      log_ratios.push_back(
          std::log(static_cast<double>(box.width) / box.height));
    }
    auto mean = [](const std::vector<double>& v) {
      return std::accumulate(v.begin(), v.end(), 0.0) /
             static_cast<double>(v.size());
    };
    // Two samplers of the same distribution: means agree within a few
    // standard errors (std / sqrt(4000) is about 0.005 here).
    CHECK(std::abs(mean(areas) - c["mean_area"].get<double>()) < 0.02);
    CHECK(std::abs(mean(log_ratios) - c["mean_log_ratio"].get<double>()) <
          0.02);
  }
  // The fallback when no try fits: a centre crop with the ratio clamped.
  options.scale_min = 5.0;
  options.scale_max = 6.0;
  const auto wide = mnv2::random_resized_crop_box(100, 400, options, rng);
  CHECK(wide == mnv2::CropBox{0, 133, 100, 133});  // w = round(100 * 4/3)
  const auto tall = mnv2::random_resized_crop_box(400, 100, options, rng);
  CHECK(tall == mnv2::CropBox{133, 0, 133, 100});  // h = round(100 / (3/4))
}

TEST_CASE("epoch order and shards equal DistributedSampler's", "[data]") {
  for (const auto& c : engine_reference()["sampler"]) {
    INFO(c.dump());
    const auto order = mnv2::epoch_order(c["n"],
                                         c["epoch"],
                                         c["seed"],
                                         c["shuffle"],
                                         c["rank"],
                                         c["world"],
                                         c["drop_last"]);
    CHECK(order == c["order"].get<std::vector<int64_t>>());
  }
}

TEST_CASE("loader batches are deterministic and independent of workers",
          "[data]") {
  const auto root = make_image_folder("loader", 3, 7);
  auto dataset = mnv2::load_image_folder(root.string());
  mnv2::LoaderOptions options;
  options.batch_size = 4;
  options.shuffle = true;
  options.train = true;
  options.seed = 11;
  options.train_transform.size = 16;
  options.normalize = false;
  std::vector<std::vector<mnv2::Batch>> runs;
  for (int workers : {1, 2, 5}) {
    options.workers = workers;
    mnv2::DataLoader loader(dataset, options);
    runs.push_back(one_epoch(loader, 2));
  }
  REQUIRE(runs[0].size() == 6);  // ceil(21 / 4)
  for (size_t r = 1; r < runs.size(); ++r) {
    for (size_t b = 0; b < runs[0].size(); ++b) {
      CHECK(runs[r][b].indices == runs[0][b].indices);
      CHECK(torch::equal(runs[r][b].images, runs[0][b].images));
    }
  }
  // Labels follow the images: class k is the grey level 40 * k.
  for (const auto& batch : runs[0]) {
    CHECK(batch.images.sizes() ==
          torch::IntArrayRef({batch.labels.size(0), 3, 16, 16}));
    const auto level = batch.images.to(torch::kFloat).mean({1, 2, 3});
    CHECK(torch::allclose(level, batch.labels.to(torch::kFloat) * 40, 0, 1));
  }
  mnv2::DataLoader loader(dataset, options);
  const auto other_epoch = one_epoch(loader, 3);
  CHECK(other_epoch[0].indices != runs[0][0].indices);

  // The workers' normalised float batches, NCHW or channels_last, equal the
  // 8-bit batches normalised afterwards.
  for (bool channels_last : {false, true}) {
    options.normalize = true;
    options.channels_last = channels_last;
    mnv2::DataLoader normalising(dataset, options);
    const auto floats = one_epoch(normalising, 2);
    REQUIRE(floats.size() == runs[0].size());
    for (size_t b = 0; b < floats.size(); ++b) {
      CHECK(floats[b].images.scalar_type() == torch::kFloat);
      CHECK(floats[b].images.is_contiguous(
          channels_last ? torch::MemoryFormat::ChannelsLast
                        : torch::MemoryFormat::Contiguous));
      CHECK(torch::allclose(
          floats[b].images,
          mnv2::normalize_images(runs[0][b].images, torch::kCPU),
          1e-5,
          1e-5));
    }
  }
}

TEST_CASE("batches are normalised with the weights' mean and std", "[data]") {
  // Solid images of level 40 * k, eval-transformed at their own size: every
  // value of class k is (40k / 255 - mean) / std, computed here by hand.
  const auto root = make_image_folder("normalisation", 3, 1, 24);
  for (const auto& n : {mnv2::Normalization{}, mnv2::kInceptionNormalization}) {
    for (const bool channels_last : {false, true}) {
      mnv2::LoaderOptions options;
      options.batch_size = 3;
      options.eval_transform.resize_size = 24;
      options.eval_transform.crop_size = 24;
      options.normalization = n;
      options.channels_last = channels_last;
      mnv2::DataLoader loader(mnv2::load_image_folder(root.string()), options);
      const auto batch = one_epoch(loader, 0).at(0);
      for (int64_t k = 0; k < 3; ++k) {
        for (int64_t c = 0; c < 3; ++c) {
          const double want =
              (40.0 * k / 255 - n.mean[static_cast<size_t>(c)]) /
              n.stddev[static_cast<size_t>(c)];
          const auto plane = batch.images[k][c];
          INFO("mean " << n.mean[0] << ", class " << k << ", channel " << c);
          CHECK(plane.min().item<double>() == Approx(want).epsilon(1e-6));
          CHECK(plane.max().item<double>() == Approx(want).epsilon(1e-6));
        }
      }
    }
  }
}

TEST_CASE("random erasing blanks a box to 0 after normalisation", "[data]") {
  const auto root = make_image_folder("erasing", 1, 4, 32);
  mnv2::LoaderOptions options;
  options.batch_size = 4;
  options.train = true;
  options.train_transform.size = 32;
  options.train_transform.random_erase_prob = 1.0;
  mnv2::DataLoader loader(mnv2::load_image_folder(root.string()), options);
  const auto batch = one_epoch(loader, 0).at(0);
  // Class 0 images are black: normalised they are -mean/std, never 0.
  const auto zeros = (batch.images == 0).all(1).sum({1, 2});
  for (int64_t i = 0; i < zeros.size(0); ++i) {
    const auto erased = zeros[i].item<int64_t>();
    CHECK(erased >= static_cast<int64_t>(0.02 * 32 * 32 * 0.5));
    CHECK(erased <= static_cast<int64_t>(0.33 * 32 * 32 * 1.1));
  }
}

TEST_CASE("unreadable images are skipped and counted, or fail when strict",
          "[data]") {
  const auto root = make_image_folder("skipping", 2, 5);
  std::ofstream(root / "class0" / "zero.png");
  std::ofstream(root / "class1" / "junk.jpg") << "junk";
  const auto dataset = mnv2::load_image_folder(root.string());
  mnv2::LoaderOptions options;
  options.batch_size = 3;
  options.eval_transform = {16, 16};
  mnv2::DataLoader loader(dataset, options);
  const auto batches = one_epoch(loader, 0);
  int64_t seen = 0;
  for (const auto& b : batches) {
    seen += b.labels.size(0);
  }
  CHECK(seen == 10);
  CHECK(loader.skipped_in_epoch() == 2);
  options.strict = true;
  mnv2::DataLoader strict(dataset, options);
  strict.start_epoch(0);
  CHECK_THROWS_AS(
      [&] {
        while (strict.next()) {
        }
      }(),
      mnv2::DataError);
}

TEST_CASE("each sample's augmentation draws from its own stream", "[data]") {
  // Equal (seed, epoch, index) give equal streams; nearby tuples, swapped
  // ones among them, give streams that neither collide nor lean.
  auto a = mnv2::sample_rng(7, 3, 11);
  auto b = mnv2::sample_rng(7, 3, 11);
  for (int i = 0; i < 4; ++i) {
    CHECK(a() == b());
  }
  std::set<uint64_t> firsts;
  int64_t ones = 0;  // set bits over all first draws
  int64_t draws = 0;
  for (uint64_t seed = 0; seed < 4; ++seed) {
    for (int64_t epoch = 0; epoch < 32; ++epoch) {
      for (int64_t index = 0; index < 32; ++index) {
        const uint64_t first = mnv2::sample_rng(seed, epoch, index)();
        firsts.insert(first);
        ones += std::popcount(first);
        ++draws;
      }
    }
  }
  CHECK(firsts.size() == static_cast<size_t>(draws));
  // 64 fair bits a draw: 4,096 draws give a mean of 32 +- 0.06 (1 sigma).
  const double mean_bits = static_cast<double>(ones) / draws;
  CHECK(std::abs(mean_bits - 32.0) < 0.4);
}

TEST_CASE("TrivialAugmentWide keeps the size and is seeded", "[data]") {
  cv::Mat image(40, 48, CV_8UC3);
  cv::randu(image, cv::Scalar::all(0), cv::Scalar::all(256));
  int changed = 0;
  for (uint64_t seed = 0; seed < 60; ++seed) {
    cv::Mat a = image.clone();
    cv::Mat b = image.clone();
    std::mt19937_64 rng_a(seed);
    std::mt19937_64 rng_b(seed);
    mnv2::trivial_augment_wide(a, true, rng_a);
    mnv2::trivial_augment_wide(b, true, rng_b);
    REQUIRE(a.size() == image.size());
    REQUIRE(a.type() == CV_8UC3);
    CHECK(cv::norm(a, b, cv::NORM_INF) == 0);
    changed += cv::norm(a, image, cv::NORM_INF) > 0 ? 1 : 0;
  }
  // Identity and zero-magnitude draws leave the image; most do not.
  CHECK(changed > 40);
}
