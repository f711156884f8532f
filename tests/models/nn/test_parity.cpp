// Parity with torchvision: the oracle (tests/oracle/make_reference.py) wrote
// torchvision models with random BN statistics, their inputs and outputs; our
// C++ model must reproduce them. The weights we write go back to Python in
// tests/oracle/check_written.py.
#include "test_support.h"

#include <mobilenetv2/nn/mobilenet_v2.h>
#include <mobilenetv2/torch_files/state_dict.h>
#include <mobilenetv2/torch_files/torch_file.h>
#include <mobilenetv2/util/counting.h>
#include <mobilenetv2/weights/load_model.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <fstream>

namespace {

constexpr double kTolerance = 1e-5;  // relative, eval mode, fp32

nlohmann::json read_manifest(const std::filesystem::path& oracle) {
  std::ifstream in(oracle / "manifest.json");
  REQUIRE(in.good());
  return nlohmann::json::parse(in);
}

torch::Tensor tensor_of(const c10::IValue& dict, const std::string& key) {
  return dict.toGenericDict().at(key).toTensor();
}

void write_for_python(mnv2::MobileNetV2& model,
                      const std::string& name,
                      const torch::Tensor& input) {
  const auto written = mnv2::test::folder_from_env("MNV2_WRITTEN_DIR");
  std::filesystem::create_directories(written);
  mnv2::write_state_dict(mnv2::state_dict_of(*model),
                         (written / (name + ".pth")).string());
  std::ofstream(written / (name + ".width")) << model->options.width_mult();
  torch::NoGradGuard no_grad;
  c10::Dict<std::string, at::Tensor> io;
  io.insert("input", input);
  io.insert("output", model->forward(input));
  mnv2::write_torch_file(io, (written / (name + "_io.pth")).string());
}

}  // namespace

TEST_CASE("torchvision's weights reproduce torchvision's outputs", "[parity]") {
  const auto oracle = mnv2::test::folder_from_env("MNV2_ORACLE_DIR");
  const auto manifest = read_manifest(oracle);
  REQUIRE(manifest["models"].size() >= 4);
  for (const auto& entry : manifest["models"]) {
    const std::string name = entry["name"];
    INFO(name << " (" << entry["container"] << " state_dict)");
    const auto weights = (oracle / (name + ".pth")).string();
    auto model = mnv2::load_mobilenet_v2(weights);
    CHECK(model->options.width_mult() == entry["width_mult"].get<double>());
    CHECK(model->options.num_classes() == entry["num_classes"].get<int64_t>());
    const auto ref =
        mnv2::read_torch_file((oracle / (name + "_io.pth")).string());
    torch::NoGradGuard no_grad;
    const auto x224 = tensor_of(ref, "input_224");
    const auto error_224 = mnv2::test::relative_error(
        model->forward(x224), tensor_of(ref, "output_224"));
    const auto error_odd =
        mnv2::test::relative_error(model->forward(tensor_of(ref, "input_odd")),
                                   tensor_of(ref, "output_odd"));
    const auto error_embedding = mnv2::test::relative_error(
        model->forward_embedding(x224), tensor_of(ref, "embedding_224"));
    std::cout << "parity " << name << ": relative error 224x224 " << error_224
              << ", 97x131 " << error_odd << ", embedding " << error_embedding
              << "\n";
    CHECK(error_224 <= kTolerance);
    CHECK(error_odd <= kTolerance);
    CHECK(error_embedding <= kTolerance);
    const auto maps = model->forward_feature_maps(x224);
    REQUIRE(maps.size() == 4);
    for (size_t i = 0; i < maps.size(); ++i) {
      CHECK(mnv2::test::relative_error(
                maps[i].tensor,
                tensor_of(ref, "feature_map_" + std::to_string(i))) <=
            kTolerance);
    }
    write_for_python(model, name, tensor_of(ref, "input_odd"));
  }
}

TEST_CASE("a model initialised in C++ runs the same in torchvision",
          "[parity]") {
  torch::manual_seed(7);
  mnv2::MobileNetV2 model(
      mnv2::MobileNetV2Options().width_mult(0.75).num_classes(13));
  // A few training steps so BN running statistics are not the defaults.
  torch::optim::SGD optimizer(model->parameters(), 0.01);
  for (int step = 0; step < 2; ++step) {
    auto loss =
        model->forward(torch::randn({4, 3, 64, 64})).logsumexp(1).mean();
    optimizer.zero_grad();
    loss.backward();
    optimizer.step();
  }
  model->eval();
  write_for_python(model, "cpp_init_w075_c13", torch::randn({2, 3, 160, 96}));
}

TEST_CASE("parameter and multiply-add counts equal torchvision's", "[parity]") {
  const auto manifest =
      read_manifest(mnv2::test::folder_from_env("MNV2_ORACLE_DIR"));
  REQUIRE(manifest["counts"].size() >= 4);
  for (const auto& entry : manifest["counts"]) {
    const double width = entry["width_mult"];
    INFO("width " << width);
    mnv2::MobileNetV2 model(mnv2::MobileNetV2Options().width_mult(width));
    CHECK(mnv2::count_parameters(*model) == entry["parameters"].get<int64_t>());
    CHECK(mnv2::count_multiply_adds(*model, 224, 224) ==
          entry["multiply_adds_224"].get<int64_t>());
    CHECK(mnv2::count_multiply_adds(*model, 160, 160) ==
          entry["multiply_adds_160"].get<int64_t>());
  }
}

TEST_CASE("a truncated legacy-format file is a clear error", "[parity]") {
  const auto oracle = mnv2::test::folder_from_env("MNV2_ORACLE_DIR");
  std::ifstream in(oracle / "w100_c1000_legacy.pth", std::ios::binary);
  const std::string bytes{std::istreambuf_iterator<char>(in), {}};
  REQUIRE(bytes.size() > 1000);
  const auto dir = mnv2::test::fresh_temp_dir("legacy-truncated");
  for (double fraction : {0.999, 0.5, 0.001}) {
    const auto path = dir / ("cut" + std::to_string(fraction) + ".pth");
    std::ofstream(path, std::ios::binary)
        << bytes.substr(0, static_cast<size_t>(bytes.size() * fraction));
    CHECK_THROWS_WITH(mnv2::read_state_dict(path.string()),
                      Catch::Contains("corrupt or truncated") &&
                          Catch::Contains(path.string()));
  }
}
