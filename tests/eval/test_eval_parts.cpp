// Evaluation parts: top-k counting against hand-counted logits, and what
// mnv2-eval refuses before loading anything.
#include "eval/eval_commands.h"
#include "eval/evaluate.h"

#include <catch2/catch.hpp>

TEST_CASE("top-1 and top-k counts match a hand count", "[eval]") {
  // Four samples, four classes. Labels 2, 0, 3, 1.
  const auto logits = torch::tensor({{0.1f, 0.2f, 0.9f, 0.0f},    // top1 ok
                                     {0.5f, 0.6f, 0.1f, 0.0f},    // 2nd
                                     {0.4f, 0.3f, 0.2f, 0.1f},    // 4th
                                     {0.3f, 0.1f, 0.2f, 0.25f}})  // 4th
      ;
  const auto labels = torch::tensor({2, 0, 3, 1}, torch::kLong);
  CHECK(mnv2::correct_counts(logits, labels, 1) ==
        std::pair<int64_t, int64_t>{1, 1});
  CHECK(mnv2::correct_counts(logits, labels, 2) ==
        std::pair<int64_t, int64_t>{1, 2});
  CHECK(mnv2::correct_counts(logits, labels, 3) ==
        std::pair<int64_t, int64_t>{1, 2});
  CHECK(mnv2::correct_counts(logits, labels, 4) ==
        std::pair<int64_t, int64_t>{1, 4});
}

TEST_CASE("mnv2-eval's problems(): weights, exactly one mode, sizes",
          "[eval]") {
  mnv2::EvalCommand c;
  CHECK(c.problems() ==
        std::vector<std::string>{
            "--weights is required",
            "give exactly one of --data, --predict, --benchmark"});
  c.weights = "w.pth";
  c.data = "val";
  CHECK(c.problems().empty());
  c.benchmark = true;
  CHECK(c.problems() ==
        std::vector<std::string>{
            "give exactly one of --data, --predict, --benchmark"});
  c.benchmark = false;
  c.topk = 0;
  CHECK(c.problems().size() == 1);
  c.topk = 5;
  c.amp_dtype = "int8";
  CHECK(c.problems() ==
        std::vector<std::string>{
            "--amp-dtype must be fp32, bf16 or fp16, got 'int8'"});
  c.amp_dtype = "bf16";
  c.dtypes = {"fp32", "int4"};
  CHECK(c.problems() == std::vector<std::string>{
                            "--dtypes takes fp32, bf16 and fp16, got 'int4'",
                            "give --dtypes or --amp-dtype, not both",
                            "--dtypes is for --benchmark"});
  c.amp_dtype.clear();
  c.dtypes = {"fp32"};
  c.data.clear();
  c.benchmark = true;
  CHECK(c.problems().empty());
}

TEST_CASE("mnv2-eval's flags: one entry each, --raw clears ema", "[eval]") {
  bool found_raw = false;
  std::set<std::string> names;
  for (const auto& flag : mnv2::eval_flags()) {
    CHECK(names.insert(flag.name).second);
    if (flag.name == "raw") {
      found_raw = true;
      CHECK(flag.kind == mnv2::FlagKind::kSwitch);
      CHECK_FALSE(flag.switch_value);
      CHECK(std::get<bool mnv2::EvalCommand::*>(flag.field) ==
            &mnv2::EvalCommand::ema);
    }
  }
  CHECK(found_raw);
  mnv2::EvalCommand c;
  c.weights = "w.pth";
  c.images = {"a.png", "b.png"};
  const auto echo = mnv2::config_json(mnv2::eval_flags(), c);
  CHECK(echo.at("weights") == "w.pth");
  CHECK(echo.at("predict") == std::vector<std::string>{"a.png", "b.png"});
  CHECK(echo.at("ema") == true);
  CHECK_FALSE(echo.contains("json"));
}
