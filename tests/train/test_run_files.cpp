// The run folder: checkpoint round trip and version refusal, the best-weights
// rule, and metrics lines dropped on resume. Expected values are the ones
// written in by hand.
#include "test_support.h"

#include <mobilenetv2/weights/checkpoint.h>
#include "train/outputs/checkpoint_saver.h"
#include "train/outputs/metrics_log.h"

#include <mobilenetv2/nn/mobilenet_v2.h>
#include <mobilenetv2/torch_files/state_dict.h>
#include <mobilenetv2/torch_files/torch_file.h>
#include <mobilenetv2/weights/sidecar.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <fstream>

namespace {

mnv2::ModelInfo small_info() {
  mnv2::ModelInfo info;
  info.options = mnv2::MobileNetV2Options().num_classes(3).width_mult(0.35);
  info.class_names = {"cat", "dog", "fox"};
  info.img_size = 64;
  info.val_resize = 72;
  info.val_crop = 64;
  return info;
}

std::vector<std::string> lines_of(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::vector<std::string> out;
  for (std::string line; std::getline(in, line);) {
    out.push_back(line);
  }
  return out;
}

}  // namespace

TEST_CASE("RunFolder names every file of the run in its folder", "[train]") {
  const mnv2::RunFolder run("/tmp/some-run");
  CHECK(run.checkpoint == "/tmp/some-run/checkpoint.pth");
  CHECK(run.best_weights == "/tmp/some-run/model_best.pth");
  CHECK(run.log == "/tmp/some-run/train.log");
  CHECK(run.metrics_jsonl == "/tmp/some-run/metrics.jsonl");
  CHECK(run.metrics_csv == "/tmp/some-run/metrics.csv");
  CHECK(run.curves == "/tmp/some-run/curves.png");
}

TEST_CASE(
    "a checkpoint reads back what was written; newer versions are refused",
    "[train]") {
  const auto dir = mnv2::test::fresh_temp_dir("checkpoint-round-trip");
  const mnv2::RunFolder run(dir.string());
  run.prepare();
  torch::manual_seed(3);
  mnv2::MobileNetV2 model(small_info().options);
  mnv2::Checkpoint cp;
  cp.model = mnv2::state_dict_of(*model);
  cp.model_ema = mnv2::StateDict{};
  cp.model_ema->insert("features.0.0.weight", torch::randn({8, 3, 3, 3}));
  cp.optimizer.insert("momentum.classifier.1.weight", torch::randn({3, 1280}));
  cp.scaler_scale = torch::full({1}, 1024.0);
  cp.scaler_growth_tracker = torch::full({1}, 17, torch::kInt);
  cp.rng_state = torch::randint(0, 255, {5056}, torch::kUInt8);
  cp.progress = {4, 7, 1234, 87.5};
  cp.info = small_info();
  cp.config_json = R"({"lr":0.05})";
  mnv2::CheckpointSaver(run, -1).save_checkpoint(cp);

  const auto back = mnv2::read_checkpoint(run.checkpoint);
  REQUIRE(back.model.size() == cp.model.size());
  for (const auto& item : cp.model) {
    CHECK(torch::equal(back.model[item.key()], item.value()));
  }
  REQUIRE(back.model_ema);
  CHECK(torch::equal((*back.model_ema)["features.0.0.weight"],
                     (*cp.model_ema)["features.0.0.weight"]));
  CHECK(torch::equal(back.optimizer["momentum.classifier.1.weight"],
                     cp.optimizer["momentum.classifier.1.weight"]));
  CHECK(back.scaler_scale.item<double>() == 1024.0);
  CHECK(back.scaler_growth_tracker.item<int>() == 17);
  CHECK(torch::equal(back.rng_state, cp.rng_state));
  CHECK(back.progress.epoch == 4);
  CHECK(back.progress.batch_in_epoch == 7);
  CHECK(back.progress.global_step == 1234);
  CHECK(back.progress.best_top1 == 87.5);
  CHECK(back.info.class_names == cp.info.class_names);
  CHECK(back.info.options.width_mult() == 0.35);
  CHECK(back.info.options.num_classes() == 3);
  CHECK(back.info.val_resize == 72);
  CHECK(back.config_json == cp.config_json);

  // The same file from a future build: refused with the versions named.
  auto dict = mnv2::read_torch_file(run.checkpoint).toGenericDict();
  dict.insert_or_assign("format_version", int64_t{999});
  const auto future = (dir / "future.pth").string();
  mnv2::write_torch_file(dict, future);
  CHECK_THROWS_WITH(
      mnv2::read_checkpoint(future),
      Catch::Contains("format version 999") && Catch::Contains("reads 1 to 1"));
  CHECK_THROWS_WITH(mnv2::load_weights_file(future, true),
                    Catch::Contains("format version 999"));
  // A plain state_dict is not a checkpoint.
  const auto plain = (dir / "plain.pth").string();
  mnv2::write_state_dict(cp.model, plain);
  CHECK_THROWS_WITH(mnv2::read_checkpoint(plain),
                    Catch::Contains("not an mnv2-train checkpoint"));
}

TEST_CASE("hostile model_info in a checkpoint is refused with the value named",
          "[train]") {
  const auto dir = mnv2::test::fresh_temp_dir("checkpoint-hostile");
  const mnv2::RunFolder run(dir.string());
  mnv2::Checkpoint cp;
  cp.model = mnv2::state_dict_of(*mnv2::MobileNetV2(small_info().options));
  cp.optimizer.insert("momentum.classifier.1.bias", torch::zeros({3}));
  cp.scaler_scale = torch::ones({1});
  cp.scaler_growth_tracker = torch::zeros({1}, torch::kInt);
  cp.rng_state = torch::zeros({8}, torch::kUInt8);
  cp.info = small_info();
  mnv2::CheckpointSaver(run, -1).save_checkpoint(cp);
  const auto good = mnv2::read_torch_file(run.checkpoint).toGenericDict();
  const auto with_info = [&](const std::string& key, const c10::IValue& value) {
    auto dict = good.copy();
    auto info = dict.at("model_info").toGenericDict().copy();
    if (value.isNone()) {
      static_cast<void>(info.erase(key));
    } else {
      info.insert_or_assign(key, value);
    }
    dict.insert_or_assign("model_info", info);
    const auto path = (dir / ("bad-" + key + ".pth")).string();
    mnv2::write_torch_file(dict, path);
    return path;
  };
  CHECK_THROWS_WITH(
      mnv2::read_checkpoint(with_info("num_classes", int64_t{1000000})),
      Catch::Contains("num_classes 1000000 is out of range"));
  CHECK_THROWS_WITH(mnv2::read_checkpoint(with_info("width_mult", 1e9)),
                    Catch::Contains("width_mult 1e+09 is out of range"));
  CHECK_THROWS_WITH(mnv2::read_checkpoint(with_info("img_size", int64_t{-1})),
                    Catch::Contains("img_size -1 is out of range"));
  CHECK_THROWS_WITH(
      mnv2::read_checkpoint(with_info("val_resize", int64_t{10000000})),
      Catch::Contains("val_resize 10000000 is out of range"));
  CHECK_THROWS_WITH(mnv2::read_checkpoint(with_info("num_classes", int64_t{4})),
                    Catch::Contains("class_names count 3 is out of range"));
  CHECK_THROWS_WITH(mnv2::read_checkpoint(with_info("dropout", c10::IValue())),
                    Catch::Contains("model_info has no 'dropout'"));
  CHECK_THROWS_WITH(
      mnv2::read_checkpoint(with_info("num_classes", std::string("three"))),
      Catch::Contains("wrong type"));
  // The same refusals when the file is given as weights to eval or export.
  CHECK_THROWS_WITH(
      mnv2::load_weights_file(with_info("num_classes", int64_t{1000000}), true),
      Catch::Contains("num_classes 1000000 is out of range"));
}

TEST_CASE("best weights are written only when top-1 strictly improves",
          "[train]") {
  const auto dir = mnv2::test::fresh_temp_dir("checkpoint-best");
  const mnv2::RunFolder run(dir.string());
  torch::manual_seed(4);
  mnv2::MobileNetV2 first(small_info().options);
  mnv2::MobileNetV2 second(small_info().options);
  mnv2::CheckpointSaver saver(run, /*best_top1=*/-1);
  const auto marker = [](double top1) {
    return nlohmann::json{{"val_top1", top1}};
  };
  CHECK(saver.save_if_best(50, *first, small_info(), marker(50)));
  CHECK_FALSE(saver.save_if_best(40, *second, small_info(), marker(40)));
  CHECK_FALSE(saver.save_if_best(50, *second, small_info(), marker(50)));
  const auto best = mnv2::read_state_dict(run.best_weights);
  CHECK(torch::equal(best["features.0.0.weight"],
                     mnv2::state_dict_of(*first)["features.0.0.weight"]));
  CHECK(saver.save_if_best(60, *second, small_info(), marker(60)));
  CHECK(saver.best_top1() == 60);
  const auto json = nlohmann::json::parse(
      std::ifstream(mnv2::metadata_path_for(run.best_weights)));
  CHECK(json.at("val_top1") == 60);
  CHECK(json.at("class_names") == small_info().class_names);

  // A resumed run remembers its best: a lower score writes nothing.
  std::filesystem::remove(run.best_weights);
  mnv2::CheckpointSaver resumed(run, /*best_top1=*/70);
  CHECK_FALSE(resumed.save_if_best(65, *first, small_info(), marker(65)));
  CHECK_FALSE(std::filesystem::exists(run.best_weights));
}

TEST_CASE("metrics of epochs an interrupted run left are dropped on resume",
          "[train]") {
  const auto dir = mnv2::test::fresh_temp_dir("metrics-resume");
  const mnv2::RunFolder run(dir.string());
  {
    mnv2::MetricsLog log(run.metrics_jsonl, run.metrics_csv, 1);
    for (int64_t epoch = 1; epoch <= 3; ++epoch) {
      mnv2::EpochMetrics m;
      m.epoch = epoch;
      m.val_top1 = 10.0 * static_cast<double>(epoch);
      log.write(m);
    }
  }
  // A kill in the middle of writing epoch 4's line.
  std::ofstream(run.metrics_jsonl, std::ios::app) << R"({"epoch": 4, "train)";
  REQUIRE(lines_of(run.metrics_jsonl).size() == 4);

  // Resuming at epoch 3 (its checkpoint was the last one written).
  mnv2::MetricsLog resumed(run.metrics_jsonl, run.metrics_csv, 3);
  REQUIRE(resumed.history().size() == 2);
  CHECK(resumed.history()[1].val_top1 == 20.0);
  // The files are rewritten once the run has its first checkpoint, not
  // before (a run that fails first leaves them as they were).
  CHECK(lines_of(run.metrics_jsonl).size() == 4);
  resumed.start();
  const auto jsonl = lines_of(run.metrics_jsonl);
  REQUIRE(jsonl.size() == 2);
  CHECK(nlohmann::json::parse(jsonl[1]).at("epoch") == 2);
  const auto csv = lines_of(run.metrics_csv);
  REQUIRE(csv.size() == 3);  // header + epochs 1 and 2
  CHECK(csv[0].rfind("epoch,train_loss,val_loss,val_top1", 0) == 0);
  CHECK(csv[2].rfind("2,", 0) == 0);

  mnv2::EpochMetrics next;
  next.epoch = 3;
  resumed.write(next);
  CHECK(lines_of(run.metrics_jsonl).size() == 3);
  CHECK(lines_of(run.metrics_csv).size() == 4);
}
