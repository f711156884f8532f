// mnv2-eval: accuracy on a dataset, predictions for images, or a benchmark.
#include "app_support.h"
#include "errors.h"
#include "eval_commands.h"

#include <cxxopts.hpp>

#include <iostream>

int main(int argc, char** argv) {
  return mnv2::run_program("mnv2-eval", [&] {
    const mnv2::EvalCommand d;
    cxxopts::Options options(
        "mnv2-eval",
        "Evaluate MobileNetV2 weights (an mnv2-train checkpoint, a "
        "torchvision-compatible .pth such as torchvision's published file, or "
        "a TorchScript file from mnv2-export). Modes:\n"
        "  mnv2-eval --weights FILE --data DIR [--json FILE]\n"
        "  mnv2-eval --weights FILE --predict IMAGE... [--topk K] [--labels "
        "FILE]\n"
        "  mnv2-eval --weights FILE --benchmark [--batch-size N] [--img-size "
        "N]");
    options.add_options()(
        "weights", "weights file", cxxopts::value<std::string>())(
        "data",
        "ImageFolder or list file to evaluate on",
        cxxopts::value<std::string>())(
        "predict",
        "classify these images",
        cxxopts::value<std::vector<std::string>>())(
        "benchmark", "measure latency and throughput")(
        "json", "write a JSON summary here", cxxopts::value<std::string>())(
        "report-dir",
        "folder for the confusion matrix CSV and PNG (default: the JSON's "
        "folder)",
        cxxopts::value<std::string>())(
        "labels",
        "class-name file (one per line), e.g. data/imagenet_classes.txt",
        cxxopts::value<std::string>())(
        "topk",
        "classes shown per image",
        cxxopts::value<int64_t>()->default_value(std::to_string(d.topk)))(
        "batch-size",
        "batch size",
        cxxopts::value<int64_t>()->default_value(std::to_string(d.batch_size)))(
        "resize-size",
        "resize of the shorter side (default: the weights' setting, else 256)",
        cxxopts::value<int64_t>()->default_value("0"))(
        "crop-size",
        "centre crop (default: the weights' setting, else 224)",
        cxxopts::value<int64_t>()->default_value("0"))(
        "img-size",
        "benchmark input size",
        cxxopts::value<int64_t>()->default_value(std::to_string(d.img_size)))(
        "iterations",
        "benchmark iterations at batch 1",
        cxxopts::value<int64_t>()->default_value(std::to_string(d.iterations)))(
        "device",
        "auto, cpu, cuda or cuda:N",
        cxxopts::value<std::string>()->default_value(d.device))(
        "amp-dtype",
        "fp32, bf16 or fp16 (benchmark: only this one)",
        cxxopts::value<std::string>()->default_value(""))(
        "channels-last",
        "channels_last memory format (--channels-last=false to turn off)",
        cxxopts::value<bool>()->default_value("true")->implicit_value("true"))(
        "raw", "use a checkpoint's raw weights, not its EMA")(
        "threads",
        "intra-op threads (0: all cores)",
        cxxopts::value<int>()->default_value("0"))(
        "workers",
        "image decoding threads (0: all cores)",
        cxxopts::value<int>()->default_value("0"))(
        "strict-data", "stop on an unreadable image instead of skipping it");
    const auto parsed =
        mnv2::parse_flags(options, argc, argv, /*allow_extra=*/true);
    if (!parsed) {
      return 0;
    }
    const auto& flags = *parsed;
    if (!flags.unmatched().empty() && flags.count("predict") == 0) {
      throw mnv2::UsageError("unexpected argument '" +
                             flags.unmatched().front() + "'");
    }
    mnv2::EvalCommand c;
    if (flags.count("weights") == 0) {
      throw mnv2::UsageError("--weights is required");
    }
    c.weights = flags["weights"].as<std::string>();
    c.ema = flags.count("raw") == 0;
    c.device = flags["device"].as<std::string>();
    c.amp_dtype = flags["amp-dtype"].as<std::string>();
    c.channels_last = flags["channels-last"].as<bool>();
    c.threads = flags["threads"].as<int>();
    c.workers = flags["workers"].as<int>();
    c.batch_size = flags["batch-size"].as<int64_t>();
    c.resize_size = flags["resize-size"].as<int64_t>();
    c.crop_size = flags["crop-size"].as<int64_t>();
    c.topk = flags["topk"].as<int64_t>();
    c.img_size = flags["img-size"].as<int64_t>();
    c.iterations = flags["iterations"].as<int64_t>();
    c.strict_data = flags.count("strict-data") != 0;
    if (flags.count("labels") != 0) {
      c.labels = flags["labels"].as<std::string>();
    }
    if (flags.count("json") != 0) {
      c.json = flags["json"].as<std::string>();
    }
    if (flags.count("report-dir") != 0) {
      c.report_dir = flags["report-dir"].as<std::string>();
    }
    if (c.batch_size < 1 || c.topk < 1 || c.iterations < 1 || c.img_size < 16) {
      throw mnv2::UsageError(
          "--batch-size, --topk and --iterations must be >= 1, --img-size >= "
          "16");
    }
    const int modes = static_cast<int>(flags.count("data") != 0) +
                      static_cast<int>(flags.count("predict") != 0) +
                      static_cast<int>(flags.count("benchmark") != 0);
    if (modes != 1) {
      throw mnv2::UsageError(
          "give exactly one of --data, --predict, --benchmark");
    }
    if (flags.count("data") != 0) {
      c.data = flags["data"].as<std::string>();
      return mnv2::run_eval_on_data(c);
    }
    if (flags.count("predict") != 0) {
      c.images = flags["predict"].as<std::vector<std::string>>();
      for (const auto& extra : flags.unmatched()) {
        c.images.push_back(extra);
      }
      return mnv2::run_predict(c);
    }
    return mnv2::run_benchmark(c);
  });
}
