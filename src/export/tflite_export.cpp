#include "export/tflite_export.h"

#include <mobilenetv2/engines/plain_network.h>
#include <mobilenetv2/engines/scripted_network.h>
#include <mobilenetv2/nn/folded_network.h>
#include <mobilenetv2/quantization/quantized_network.h>
#include "common/log.h"
#include "export/tflite_writer.h"

#include <filesystem>
#include <iostream>

namespace fs = std::filesystem;

namespace mnv2 {

namespace {

// The logits' step for an int8 file written before calibration measured
// it: the largest |logit| the classifier can give on features in their
// code range, which no image exceeds (coarser than a measured step).
float logits_bound_step(const plain::Network& net) {
  const auto& last = net.blocks.back().convs.back();
  const double feature_max = 255.0 * last.output_scale;
  double bound = 0;
  for (int64_t c = 0; c < net.classes; ++c) {
    double high = net.fc_bias[static_cast<size_t>(c)];
    double low = high;
    for (int64_t k = 0; k < net.features; ++k) {
      const double w = net.fc_weight[static_cast<size_t>(c * net.features + k)];
      (w > 0 ? high : low) += w * feature_max;
    }
    bound = std::max({bound, std::abs(high), std::abs(low)});
  }
  return static_cast<float>(bound / 127.0);
}

FoldedNetwork folded_of(const ExportCommand& c, const InferenceModel& model) {
  if (model.eager()) {
    return fold_batchnorm(model.eager());
  }
  if (model.script() != nullptr) {
    auto folded = folded_from_scripted(
        *model.script(), fold_batchnorm(MobileNetV2(model.info().options)));
    if (folded) {
      return *folded;
    }
    throw ConfigError("--weights '" + c.weights +
                      "' is TorchScript that mnv2-export did not write "
                      "unfrozen; export from the weights it came from");
  }
  throw ConfigError("--weights '" + c.weights + "' is a " + model.kind() +
                    " file, which does not export to TensorFlow Lite");
}

}  // namespace

Outcome export_tflite(const ExportCommand& c, const InferenceModel& model) {
  tflite_export::TfliteOptions options;
  options.image_size = c.img_size > 0 ? c.img_size : model.info().val_crop;
  options.metadata_json = model_info_to_json(model.info());
  plain::Network network;
  std::string form = "float32";
  if (const auto* quantized = model.quantized()) {
    network = to_plain_network(*quantized);
    options.io_type = tflite_export::io_type_from_name(c.tflite_io);
    options.logits_scale = static_cast<float>(quantized->logits_scale);
    if (!(options.logits_scale > 0)) {
      options.logits_scale = logits_bound_step(network);
      log::warn(log::cat(c.weights,
                         ": written before int8 files held the logits' range; "
                         "the logits get a step of ",
                         options.logits_scale,
                         " from the classifier's bound (export the int8 file "
                         "again for a finer one)"));
    }
    form = "full-integer int8, " + c.tflite_io + " input and output";
  } else {
    if (c.tflite_io != "int8") {
      throw ConfigError(
          "--tflite-io is for int8 weights; a float model's "
          "input and output are float32");
    }
    network = to_plain_network(folded_of(c, model));
  }
  // Written and checked under another name beside --output, then renamed
  // over it: a failed check leaves a previous file as it was.
  const auto staging =
      (fs::path(c.output).parent_path() /
       ("." + fs::path(c.output).filename().string() + ".staging"))
          .string();
  tflite_export::TfliteCheck check;
  try {
    tflite_export::write_tflite(network, options, staging);
    check = tflite_export::verify_tflite(network, options, staging);
  } catch (const std::runtime_error& e) {
    std::error_code ec;
    fs::remove(staging, ec);
    std::cerr << "mnv2-export: " << e.what() << "; nothing written\n";
    return Outcome::kCheckFailed;
  }
  fs::rename(staging, c.output);
  const auto size = std::to_string(options.image_size);
  std::cout << "wrote " << c.output << " (TensorFlow Lite, " << form
            << "; input 1x" << size << "x" << size << "x3 NHWC, "
            << network.classes << " logits; width "
            << model.info().options.width_mult() << ")\n"
            << "verified by reading it back: " << check.tensors << " tensors, "
            << check.operators << " operators, shapes as TFLite computes "
            << "them, and " << check.compared
            << " weights, biases and steps equal to the weights' bit for "
               "bit\n";
  if (check.widened > 0) {
    std::cout << check.widened
              << " weight channel(s) of near-zero weights got a larger step, "
                 "so that their bias fits TFLite's int32\n";
  }
  return Outcome::kDone;
}

}  // namespace mnv2
