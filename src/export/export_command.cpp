#include "export/export_command.h"
#include "export/int8_export.h"

#include <mobilenetv2/classifier/inference_model.h>
#include <mobilenetv2/engines/plain_network.h>
#include <mobilenetv2/nn/folded_network.h>
#include <mobilenetv2/torch_files/load_weights.h>
#include <mobilenetv2/weights/checkpoint.h>
#include <mobilenetv2/weights/sidecar.h>
#include "common/errors.h"
#include "common/log.h"
#include "common/runtime.h"
#include "export/onnx_writer.h"
#include "export/tflite_export.h"
#include "export/torchscript_export.h"

#include <torch/script.h>
#include <torch/torch.h>
#include <opencv2/dnn.hpp>

#include <filesystem>
#include <iostream>

namespace fs = std::filesystem;

namespace mnv2 {

namespace {

constexpr int64_t kVerifyBatch = 4;

void check_output_path(const std::string& output) {
  const auto parent = fs::absolute(output).parent_path();
  std::error_code ec;
  if (!fs::is_directory(parent, ec)) {
    throw ConfigError("--output '" + output + "': folder '" + parent.string() +
                      "' does not exist");
  }
  if (fs::is_directory(output, ec)) {
    throw ConfigError("--output '" + output + "' is a folder");
  }
}

}  // namespace

torch::Tensor run_with_opencv(const std::string& path, const torch::Tensor& x) {
  auto net = cv::dnn::readNetFromONNX(path);
  const auto input = x.contiguous();
  const std::vector<int> shape(input.sizes().begin(), input.sizes().end());
  cv::Mat blob(static_cast<int>(shape.size()),
               shape.data(),
               CV_32F,
               input.data_ptr<float>());
  net.setInput(blob);
  cv::Mat out = net.forward();
  return torch::from_blob(
             out.ptr<float>(), {out.size[0], out.size[1]}, torch::kFloat)
      .clone();
}

Outcome run_export(const ExportCommand& c) {
  check_output_path(c.output);
  configure_runtime(0);
  const auto model =
      InferenceModel::load(c.weights, c.ema, torch::kCPU, c.allow_non_finite);
  for (const auto& warning : model.warnings()) {
    log::warn(log::cat(c.weights, ": ", warning));
  }
  const auto& info = model.info();
  if (c.width_mult > 0 && c.width_mult != info.options.width_mult()) {
    throw ConfigError("--width-mult " + std::to_string(c.width_mult) +
                      " does not match the weights' width " +
                      std::to_string(info.options.width_mult()));
  }
  if (c.format == "tflite") {
    return export_tflite(c, model);
  }
  if (model.quantized() != nullptr) {
    return export_quantized_onnx(c, model);
  }
  if (!model.eager()) {
    throw ConfigError("--weights '" + c.weights + "' is a " + model.kind() +
                      " file; export needs a checkpoint, a state_dict or "
                      "Keras .h5");
  }
  if (c.format == "int8") {
    return export_int8(c, model);
  }
  const int64_t size = c.img_size > 0 ? c.img_size : info.val_crop;
  torch::manual_seed(0);
  const auto x = torch::randn({kVerifyBatch, 3, size, size});
  torch::NoGradGuard no_grad;
  const auto expected = model.forward(x);
  const auto metadata = model_info_to_json(info);

  torch::Tensor actual;
  std::string consumer;
  if (c.format == "torchscript") {
    write_torchscript(
        fold_batchnorm(model.eager()), metadata, c.output, {c.freeze});
    auto loaded = torch::jit::load(c.output);
    loaded.eval();
    actual = loaded.forward({x}).toTensor();
    consumer = "torch::jit::load";
  } else if (c.format == "onnx") {
    onnx_export::write_onnx(to_plain_network(fold_batchnorm(model.eager())),
                            {{"mnv2_metadata", metadata}},
                            c.output);
    actual = run_with_opencv(c.output, x);
    consumer = "OpenCV DNN";
  } else {
    write_state_dict(state_dict_of(*model.eager()), c.output);
    write_weights_metadata(info, c.output);
    MobileNetV2 reloaded(info.options);
    load_weights(*reloaded, read_state_dict(c.output));
    reloaded->eval();
    actual = reloaded->forward(x);
    consumer = "state_dict reader";
  }
  const double max_abs = (actual - expected).abs().max().item<double>();
  const double relative =
      max_abs / std::max(expected.abs().max().item<double>(), 1e-12);
  const bool ok = relative <= c.tolerance;
  std::cout << "wrote " << c.output << " (" << c.format << ", width "
            << info.options.width_mult() << ", " << info.options.num_classes()
            << " classes)\n"
            << "verified with " << consumer << " on a " << kVerifyBatch << "x3x"
            << size << "x" << size << " batch: max abs diff " << max_abs
            << ", max relative diff " << relative << " (tolerance "
            << c.tolerance << "): " << (ok ? "ok" : "FAILED") << "\n";
  if (!ok) {
    std::error_code ec;
    fs::remove(c.output, ec);
    if (c.format == "pth") {
      fs::remove(metadata_path_for(c.output), ec);  // written beside it
    }
    std::cerr << "mnv2-export: verification failed; '" << c.output
              << "' removed\n";
    return Outcome::kCheckFailed;
  }
  return Outcome::kDone;
}

}  // namespace mnv2
