// mnv2-eval's inference model runs through mnv2::OneDnnMobileNetV2 (fp32,
// where built; tested in tests/models/engines/onednn) and
// mnv2::FusedMobileNetV2 (tested in tests/models/engines) once asked to,
// with the eager model's results; the engine registry chooses among them.
#include "test_support.h"

#include <mobilenetv2/classifier/engine_registry.h>
#include <mobilenetv2/classifier/inference_model.h>

#include <mobilenetv2/torch_files/state_dict.h>
#include <mobilenetv2/util/cpu_features.h>

#include <catch2/catch.hpp>

namespace {

// An inference model loaded from a weights file written in `folder`.
mnv2::InferenceModel trained_model(const std::string& folder) {
  const auto dir = mnv2::test::fresh_temp_dir(folder);
  torch::manual_seed(21);
  mnv2::MobileNetV2 trained(
      mnv2::MobileNetV2Options().num_classes(10).width_mult(0.5));
  // Freshly initialised, the logits are about 1e-9: rounding would dominate.
  mnv2::test::randomise_batchnorm(trained);
  const auto path = (dir / "weights.pth").string();
  mnv2::write_state_dict(mnv2::state_dict_of(*trained), path);
  return mnv2::InferenceModel::load(path, true, torch::kCPU);
}

}  // namespace

TEST_CASE("the inference model uses the fused engine", "[eval][bf16]") {
  auto model = trained_model("fused-engine");
  model.to_channels_last();
  torch::NoGradGuard no_grad;
  const auto images = torch::randn({5, 3, 97, 97});
  const auto expected = model.forward(images);
  REQUIRE_FALSE(model.fused());
  CHECK_FALSE(model.runs_fused(std::nullopt));
  model.use_fused_engine();
  REQUIRE(model.fused());
  CHECK(model.runs_fused(std::nullopt));
  CHECK(model.runs_fused(torch::kBFloat16) == mnv2::cpu_has_native_bf16());
#ifdef MNV2_WITH_ONEDNN
  CHECK(model.engine_for(std::nullopt) == "onednn");
#else
  CHECK(model.engine_for(std::nullopt) == "graph");
#endif
  for (int pass = 0; pass < 2; ++pass) {
    CHECK(mnv2::test::relative_error(model.forward(images), expected) < 1e-4);
  }
}

TEST_CASE("the inference model's oneDNN Graph engine", "[eval]") {
  auto model = trained_model("graph-engine");
  torch::NoGradGuard no_grad;
  const auto images = torch::randn({3, 3, 64, 64});
  const auto expected = model.forward(images);
  CHECK(model.engine_for(std::nullopt) == "eager");
  model.use_fused_engine(/*graph_only=*/true);
  CHECK(model.engine_for(std::nullopt) == "graph");
  for (int pass = 0; pass < 2; ++pass) {
    CHECK(mnv2::test::relative_error(model.forward(images), expected) < 1e-4);
  }
}

TEST_CASE("one registry lists every engine and chooses among them", "[eval]") {
  std::vector<std::string> names;
  for (const auto& kind : mnv2::engine_registry()) {
    names.push_back(kind.name);
  }
  std::vector<std::string> expected{
      "int8-simulated", "graph", "torchscript", "eager"};
#ifdef MNV2_WITH_ONEDNN
  expected.insert(expected.begin(), {"onednn-int8", "onednn"});
#endif
  CHECK(names == expected);

  auto model = trained_model("registry");
  const auto& eager = model.engine(std::nullopt);
  CHECK(eager.name() == "eager");
  CHECK(eager.dtype(std::nullopt) == "fp32");
  CHECK(eager.dtype(torch::kBFloat16) == "bf16");
  CHECK(eager.layout() == "nchw");
  CHECK(eager.library().empty());
  model.to_channels_last();
  CHECK(model.engine(std::nullopt).layout() == "channels_last");
  model.use_fused_engine();
#ifdef MNV2_WITH_ONEDNN
  CHECK(model.engine(std::nullopt).library().rfind("oneDNN 3.", 0) == 0);
#endif
  // Under autocast the fp32 oneDNN engine steps aside: the graph engine
  // where the CPU has native bf16, else the eager module.
  CHECK(model.engine_for(torch::kBFloat16) ==
        (mnv2::cpu_has_native_bf16() ? "graph" : "eager"));
  // A preference no engine of the file takes leaves its own: CUDA weights
  // and TorchScript files keep theirs (tested in programs.*).
  mnv2::EngineWeights none;
  CHECK(mnv2::build_engines(none, mnv2::EnginePreference::kFused, torch::kCPU)
            .empty());
  CHECK_THROWS_AS(mnv2::select_engine({}, std::nullopt), std::logic_error);
}
