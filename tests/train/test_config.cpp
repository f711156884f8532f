// Recipes, problems() and the flag table of mnv2-train. Expected values are
// the published settings (docs/training.md's recipe table) and the JSON keys
// that checkpoints have always carried.
#include "common/runtime.h"
#include "train/config/train_config.h"

#include <catch2/catch.hpp>

#include <fstream>

#include <cstdlib>
#include <optional>
#include <set>
#include <string>
#include <vector>

TEST_CASE("recipes set their published values; unknown names change nothing",
          "[train]") {
  mnv2::TrainConfig c;
  REQUIRE(mnv2::apply_recipe(c, "digits"));
  CHECK(c.recipe == "digits");
  CHECK(c.img_size == 48);
  CHECK(c.width_mult == 0.5);
  CHECK(c.optimizer == "sgd");
  CHECK(c.nesterov);
  CHECK(c.lr == 0.05);
  CHECK(c.lr_scheduler == "cosine");
  CHECK(c.warmup_epochs == 2);
  CHECK(c.label_smoothing == 0.1);
  CHECK(c.epochs == 20);

  mnv2::TrainConfig v2;
  REQUIRE(mnv2::apply_recipe(v2, "torchvision-v2"));
  CHECK(v2.lr == 0.5);
  CHECK(v2.weight_decay == 2e-5);
  CHECK(v2.mixup_alpha == 0.2);
  CHECK(v2.cutmix_alpha == 1.0);
  CHECK(v2.ema);
  CHECK(v2.ema_decay == 0.99998);
  CHECK(v2.epochs == 600);
  CHECK(v2.img_size == 176);
  CHECK(v2.val_resize == 232);

  mnv2::TrainConfig paper;
  REQUIRE(mnv2::apply_recipe(paper, "paper"));
  CHECK(paper.optimizer == "rmsprop");
  CHECK(paper.lr_gamma == 0.98);

  mnv2::TrainConfig unknown;
  unknown.recipe = "nope";
  CHECK_FALSE(mnv2::apply_recipe(unknown, "nope"));
  CHECK(unknown.lr == mnv2::TrainConfig{}.lr);
  unknown.data = "d";
  unknown.output = "o";
  REQUIRE(unknown.problems().size() == 1);
  CHECK(unknown.problems()[0] == "--recipe: unknown recipe 'nope'");
}

TEST_CASE("problems() names the flag of each bad value", "[train]") {
  mnv2::TrainConfig c;
  CHECK(c.problems() ==
        std::vector<std::string>{"--data is required", "--output is required"});
  c.data = "d";
  c.output = "o";
  CHECK(c.problems().empty());
  const auto first_problem = [&](auto change) {
    mnv2::TrainConfig bad = c;
    change(bad);
    const auto problems = bad.problems();
    return problems.empty() ? std::string() : problems.front();
  };
  CHECK(first_problem([](auto& x) { x.lr = -1; }) == "--lr must be positive");
  CHECK(first_problem([](auto& x) { x.epochs = 0; }) ==
        "--epochs must be at least 1");
  CHECK(first_problem([](auto& x) { x.img_size = 8; }) ==
        "--img-size must be in [16, 4096]");
  CHECK(first_problem([](auto& x) { x.width_mult = 0; }) ==
        "--width-mult must be in (0, 4]");
  CHECK(first_problem([](auto& x) { x.amp_dtype = "fp8"; }) ==
        "--amp-dtype must be auto, fp16 or bf16");
  CHECK(first_problem([](auto& x) { x.val_resize = 100; }) ==
        "--val-resize must be >= --val-crop >= 16");
}

TEST_CASE("each mnv2-train flag is declared once; the echo keeps its keys",
          "[train]") {
  std::set<std::string> names;
  for (const auto& flag : mnv2::train_flags()) {
    CHECK(names.insert(flag.name).second);
  }
  CHECK(names.size() == 63);
  mnv2::TrainConfig c;
  mnv2::apply_recipe(c, "digits");
  c.data = "data/digits";
  const auto json = nlohmann::json::parse(mnv2::to_json(c));
  // The keys checkpoints carried before the table existed.
  const std::set<std::string> keys = {"amp",
                                      "amp_dtype",
                                      "batch_size",
                                      "channels_last",
                                      "clip_grad_norm",
                                      "crop_scale_min",
                                      "cutmix_alpha",
                                      "data",
                                      "deterministic",
                                      "device",
                                      "dropout",
                                      "ema",
                                      "ema_decay",
                                      "ema_steps",
                                      "epochs",
                                      "freeze_features",
                                      "hflip",
                                      "img_size",
                                      "label_smoothing",
                                      "lr",
                                      "lr_gamma",
                                      "lr_min",
                                      "lr_scheduler",
                                      "lr_step_size",
                                      "mixup_alpha",
                                      "momentum",
                                      "nesterov",
                                      "norm_weight_decay",
                                      "opt_eps",
                                      "optimizer",
                                      "output",
                                      "pretrained",
                                      "random_erase",
                                      "recipe",
                                      "seed",
                                      "threads",
                                      "trivial_augment",
                                      "val_crop",
                                      "val_data",
                                      "val_resize",
                                      "warmup_decay",
                                      "warmup_epochs",
                                      "weight_decay",
                                      "width_mult",
                                      // With distributed training:
                                      "accumulate_steps",
                                      "dist_backend",
                                      "dist_timeout",
                                      "ddp_bucket_mb",
                                      "ddp_comm_hook",
                                      // With pretrained weights from Keras:
                                      "padding",
                                      // With sharded data:
                                      "shuffle_buffer",
                                      // With the fused BatchNorm:
                                      "fused_batchnorm",
                                      // With quantization-aware training:
                                      "qat",
                                      "qat_freeze_bn_epoch"};
  std::set<std::string> got;
  for (const auto& item : json.items()) {
    got.insert(item.key());
  }
  CHECK(got == keys);
  CHECK(json.at("recipe") == "digits");
  CHECK(json.at("img_size") == 48);
  CHECK(json.at("nesterov") == true);
  CHECK(json.at("data") == "data/digits");
}

TEST_CASE(
    "an instruction-set cap makes bf16 emulated, as on an AVX2 host, or "
    "slow, as on an Intel CPU without AMX",
    "[train]") {
  // The variables as the suite was started (it may itself run capped).
  std::vector<std::pair<std::string, std::optional<std::string>>> saved;
  for (const char* name :
       {"ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY"}) {
    const char* value = std::getenv(name);
    saved.emplace_back(
        name, value ? std::optional<std::string>(value) : std::nullopt);
    ::unsetenv(name);
  }
  const bool hardware = mnv2::cpu_has_native_bf16();
  ::setenv("ONEDNN_MAX_CPU_ISA", "AVX2", 1);
  CHECK_FALSE(mnv2::cpu_has_native_bf16());
  std::vector<std::string> warnings;
  const auto warn = [&](const std::string& w) { warnings.push_back(w); };
  // --amp-dtype auto falls back to fp32 with one warning.
  CHECK_FALSE(mnv2::amp_dtype_for("auto", torch::kCPU, warn).has_value());
  CHECK(mnv2::amp_dtype_for("bf16", torch::kCPU, warn) == torch::kBFloat16);
  CHECK(warnings.size() == 2);
  ::setenv("ONEDNN_MAX_CPU_ISA", "avx512_core_bf16", 1);
  CHECK(mnv2::cpu_has_native_bf16() == hardware);
  ::unsetenv("ONEDNN_MAX_CPU_ISA");
  ::setenv("ATEN_CPU_CAPABILITY", "avx2", 1);
  CHECK_FALSE(mnv2::cpu_has_native_bf16());
  ::unsetenv("ATEN_CPU_CAPABILITY");
  // Intel's AVX-512 BF16 without AMX (an AMX host capped below it) trains
  // bf16 slower than fp32: auto keeps fp32, with one warning that says why.
  // AMD's Zen 4 gains from it without AMX.
  const bool intel = mnv2::cpu_is_intel();
  ::setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_BF16", 1);
  warnings.clear();
  const auto capped = mnv2::amp_dtype_for("auto", torch::kCPU, warn);
  CHECK(capped.has_value() == (hardware && !intel));
  REQUIRE(warnings.size() == (capped ? 0U : 1U));
  if (hardware && intel) {
    CHECK(warnings[0].find("without AMX") != std::string::npos);
    // Named, bf16 is not refused, but its cost is told.
    CHECK(mnv2::amp_dtype_for("bf16", torch::kCPU, warn) == torch::kBFloat16);
    REQUIRE(warnings.size() == 2);
    CHECK(warnings[1].find("slower than fp32") != std::string::npos);
  }
  ::unsetenv("ONEDNN_MAX_CPU_ISA");
  CHECK(mnv2::amp_dtype_for("auto", torch::kCPU, warn).has_value() ==
        (hardware && (!intel || mnv2::cpu_has_amx_bf16())));
  for (const auto& [name, value] : saved) {
    if (value) {
      ::setenv(name.c_str(), value->c_str(), 1);
    }
  }
}

TEST_CASE("AMX counts only where oneDNN may use it", "[train]") {
  // The CPU's own flags, read apart from LibTorch's detection.
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  bool amx = false;
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("flags", 0) == 0) {
      amx = line.find(" amx_bf16") != std::string::npos;
      break;
    }
  }
  const char* cap = std::getenv("ONEDNN_MAX_CPU_ISA");
  const std::optional<std::string> saved =
      cap ? std::optional<std::string>(cap) : std::nullopt;
  ::unsetenv("ONEDNN_MAX_CPU_ISA");
  CHECK(mnv2::cpu_has_amx_bf16() == amx);
  for (const char* below : {"AVX2", "avx512_core_vnni", "AVX512_CORE_BF16"}) {
    CAPTURE(below);
    ::setenv("ONEDNN_MAX_CPU_ISA", below, 1);
    CHECK_FALSE(mnv2::cpu_has_amx_bf16());
  }
  for (const char* at_least : {"AVX512_CORE_AMX", "all"}) {
    CAPTURE(at_least);
    ::setenv("ONEDNN_MAX_CPU_ISA", at_least, 1);
    CHECK(mnv2::cpu_has_amx_bf16() == amx);
  }
  ::unsetenv("ONEDNN_MAX_CPU_ISA");
  if (saved) {
    ::setenv("ONEDNN_MAX_CPU_ISA", saved->c_str(), 1);
  }
}

TEST_CASE("the stored configuration reads back, and changed flags are named",
          "[train]") {
  mnv2::TrainConfig run;
  REQUIRE(mnv2::apply_recipe(run, "digits"));
  run.epochs = 7;
  run.ema = true;
  run.data = "folder with spaces";
  run.lr = 0.0125;
  const auto echo = nlohmann::json::parse(mnv2::to_json(run));
  mnv2::TrainConfig back;
  mnv2::config_from_json(mnv2::train_flags(), echo, back);
  CHECK(mnv2::to_json(back) == mnv2::to_json(run));
  CHECK(back.recipe == "digits");
  CHECK(back.data == "folder with spaces");
  CHECK(mnv2::changed_flags(mnv2::train_flags(), run, back).empty());

  back.epochs = 9;
  back.lr = 0.5;
  CHECK(mnv2::changed_flags(mnv2::train_flags(), run, back) ==
        std::vector<std::string>{"--epochs 7 -> 9", "--lr 0.0125 -> 0.5"});

  auto wrong_type = echo;
  wrong_type["epochs"] = "seven";
  CHECK_THROWS_AS(mnv2::config_from_json(mnv2::train_flags(), wrong_type, back),
                  nlohmann::json::type_error);
}

TEST_CASE("validation sizes follow --img-size by the recipe's ratio",
          "[train]") {
  mnv2::TrainConfig digits;
  mnv2::apply_recipe(digits, "digits");
  digits.img_size = 64;
  mnv2::follow_training_size(digits, false, false);
  CHECK(digits.val_resize == 64);
  CHECK(digits.val_crop == 64);

  mnv2::TrainConfig v1;  // torchvision-v1: 224, 256/224
  v1.img_size = 32;
  mnv2::follow_training_size(v1, false, false);
  CHECK(v1.val_resize == 37);  // 256 * 32 / 224 = 36.6
  CHECK(v1.val_crop == 32);

  mnv2::TrainConfig v2;  // torchvision-v2 trains at 176, validates 232/224
  mnv2::apply_recipe(v2, "torchvision-v2");
  v2.img_size = 88;
  mnv2::follow_training_size(v2, false, false);
  CHECK(v2.val_resize == 116);
  CHECK(v2.val_crop == 112);

  mnv2::TrainConfig given;  // a given size stays; resize stays >= crop
  given.img_size = 32;
  given.val_crop = 100;
  mnv2::follow_training_size(given, false, true);
  CHECK(given.val_crop == 100);
  CHECK(given.val_resize == 100);

  mnv2::TrainConfig unchanged;  // the recipe's own training size
  unchanged.val_resize = 300;
  mnv2::follow_training_size(unchanged, false, false);
  CHECK(unchanged.val_resize == 300);
}
