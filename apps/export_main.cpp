// mnv2-export: TorchScript, ONNX or torchvision-compatible weights.
#include "app_support.h"
#include "errors.h"
#include "export_command.h"

#include <cxxopts.hpp>

#include <iostream>

int main(int argc, char** argv) {
  return mnv2::run_program("mnv2-export", [&] {
    const mnv2::ExportCommand d;
    cxxopts::Options options(
        "mnv2-export",
        "Export MobileNetV2 weights (an mnv2-train checkpoint or a "
        "torchvision-compatible .pth) as TorchScript or ONNX (BatchNorm "
        "folded, inference only) or as a torchvision-compatible .pth. Every "
        "export is reloaded and checked against the eager model.");
    options.add_options()(
        "weights", "weights file", cxxopts::value<std::string>())(
        "format", "torchscript, onnx or pth", cxxopts::value<std::string>())(
        "output", "file to write", cxxopts::value<std::string>())(
        "img-size",
        "verification input size (default: the weights' crop size)",
        cxxopts::value<int64_t>()->default_value("0"))(
        "width-mult",
        "expected width (default: read from the weights)",
        cxxopts::value<double>()->default_value("0"))(
        "raw", "use a checkpoint's raw weights, not its EMA")(
        "freeze", "TorchScript: freeze the module")(
        "tolerance",
        "max relative difference accepted",
        cxxopts::value<double>()->default_value("1e-4"));
    const auto parsed = mnv2::parse_flags(options, argc, argv);
    if (!parsed) {
      return 0;
    }
    const auto& flags = *parsed;
    for (const char* required : {"weights", "format", "output"}) {
      if (flags.count(required) == 0) {
        throw mnv2::UsageError(std::string("--") + required + " is required");
      }
    }
    mnv2::ExportCommand c;
    c.weights = flags["weights"].as<std::string>();
    c.format = flags["format"].as<std::string>();
    c.output = flags["output"].as<std::string>();
    c.img_size = flags["img-size"].as<int64_t>();
    c.width_mult = flags["width-mult"].as<double>();
    c.ema = flags.count("raw") == 0;
    c.freeze = flags.count("freeze") != 0;
    c.tolerance = flags["tolerance"].as<double>();
    if (c.img_size != 0 && c.img_size < 16) {
      throw mnv2::UsageError("--img-size must be at least 16");
    }
    return mnv2::run_export(c);
  });
}
