#include "export/int8_export.h"

#include <mobilenetv2/classifier/image_classifier.h>
#include <mobilenetv2/nn/folded_network.h>
#include <mobilenetv2/quantization/quantize.h>
#include <mobilenetv2/vision/vision.h>
#include "common/log.h"
#include "common/progress.h"
#include "data/dataset.h"
#include "export/int8_gate.h"
#include "export/onnx_writer.h"

#include <nlohmann/json.hpp>

#include <mobilenetv2/engines/plain_network.h>
#include <mobilenetv2/weights/sidecar.h>

#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <random>
#include <sstream>

namespace fs = std::filesystem;

namespace mnv2 {

namespace {

// The engine computes integer arithmetic; the simulation computes it in
// fp32, one code off where fp32 rounding crosses a rounding boundary.
constexpr double kInt8Tolerance = 1e-2;
// Below this many images a calibration still runs, with a warning: the
// ranges then come from few activations (the default samples 300).
constexpr int64_t kFewCalibrationImages = 100;

// Progress of a long step (reading 1,400 calibration images and
// calibrating took 54 s without a word): a bar on a terminal, else a line
// every few seconds.
constexpr double kSecondsBetweenProgressLines = 5;

Progress progress_of(const std::string& label, int64_t total) {
  Progress progress(label, total, 1);
  progress.at_most_every(kSecondsBetweenProgressLines);
  return progress;
}

// A fixed sample of the folder, so that a rerun writes the same file; the
// last batch holds what is left, so any non-empty folder calibrates.
std::vector<torch::Tensor> calibration_batches(const ExportCommand& c,
                                               const ImageClassifier& model,
                                               int64_t& used) {
  auto paths = list_images({c.calibration_data}).paths;
  std::mt19937_64 rng(0);
  std::shuffle(paths.begin(), paths.end(), rng);
  std::vector<torch::Tensor> batches;
  std::vector<torch::Tensor> pending;
  int64_t unreadable = 0;
  used = 0;
  const auto wanted = std::min<int64_t>(c.calibration_images,
                                        static_cast<int64_t>(paths.size()));
  auto progress = progress_of("calibration images", wanted);
  for (const auto& path : paths) {
    if (used == c.calibration_images) {
      break;
    }
    try {
      pending.push_back(
          model.preprocess(read_image(path, model.eval_transform())));
    } catch (const DataError& e) {
      log::warn(log::cat("skipping unreadable image: ", e.what()));
      ++unreadable;
      continue;
    }
    ++used;
    progress.update(used, used, "read");
    if (static_cast<int64_t>(pending.size()) == c.calibration_batch) {
      batches.push_back(torch::stack(pending));
      pending.clear();
    }
  }
  if (used == 0) {
    throw ConfigError("--calibration-data '" + c.calibration_data +
                      "': no readable image (" + std::to_string(unreadable) +
                      " unreadable)");
  }
  if (used < kFewCalibrationImages) {
    log::warn(log::cat("--calibration-data '",
                       c.calibration_data,
                       "': ",
                       used,
                       " readable images (",
                       unreadable,
                       " unreadable); activation ranges from fewer than ",
                       kFewCalibrationImages,
                       " images may clip inputs unlike them"));
  }
  if (!pending.empty()) {
    batches.push_back(torch::stack(pending));
  }
  progress.finish();
  return batches;
}

// Without a folder (a QAT checkpoint): 16 images of uniformly random pixels,
// normalised as the weights expect, to verify the engine on.
std::vector<torch::Tensor> verification_batches(const InferenceModel& model,
                                                int64_t& used) {
  const auto& info = model.info();
  const auto& n = info.normalization;
  const auto mean =
      torch::tensor({n.mean[0], n.mean[1], n.mean[2]}).view({1, 3, 1, 1});
  const auto stddev =
      torch::tensor({n.stddev[0], n.stddev[1], n.stddev[2]}).view({1, 3, 1, 1});
  torch::manual_seed(0);
  const auto pixels = torch::rand({16, 3, info.val_crop, info.val_crop});
  used = 16;
  return {((pixels - mean) / stddev).to(torch::kFloat)};
}

std::string quantization_json(const ExportCommand& c,
                              const QuantizeOptions& q,
                              int64_t images) {
  std::ostringstream json;
  // No calibration images: the ranges of quantization-aware training.
  json << "{\"quantization\": {\"method\": \""
       << (images == 0 ? "qat" : calibration_method_name(q.method))
       << "\", \"percentile\": " << q.percentile
       << ", \"bias_correction\": " << (q.bias_correction ? "true" : "false")
       << ", \"calibration_images\": " << images
       << ", \"weights\": \"per-channel symmetric, dense 7-bit, depthwise "
          "8-bit\", \"activations\": \"per-tensor, u8 after ReLU6, s8 "
          "otherwise\", \"from\": \""
       << fs::path(c.weights).filename().string() << "\"}}";
  return json.str();
}

}  // namespace

Outcome export_int8(const ExportCommand& c, const InferenceModel& model) {
  const auto* qat = model.qat();
  if (c.calibration_data.empty() && !qat) {
    throw ConfigError(
        "--format int8 needs --calibration-data (a folder of images), "
        "except from an mnv2-train --qat checkpoint");
  }
  std::error_code ec;
  if (!c.calibration_data.empty() &&
      !fs::is_directory(c.calibration_data, ec)) {
    throw ConfigError("--calibration-data '" + c.calibration_data +
                      "' is not a folder");
  }
  ClassifierOptions eager;
  eager.engine = Engine::kEager;
  const ImageClassifier fp32(model, eager);
  int64_t images = 0;
  // A QAT checkpoint's ranges need no calibration: the images (where given)
  // only verify the file.
  const auto batches = c.calibration_data.empty()
                           ? verification_batches(model, images)
                           : calibration_batches(c, fp32, images);
  QuantizeOptions q;
  q.method = calibration_method_from_name(c.calibration_method);
  q.percentile = c.percentile;
  q.bias_correction = !c.no_bias_correction;
  q.input_max_abs = normalized_max_abs(model.info().normalization);
  const auto passes = static_cast<int64_t>(2 * batches.size());
  auto calibrating = progress_of("calibrate", passes);
  int64_t passed_images = 0;
  q.on_batch = [&](int64_t done, int64_t, int64_t batch_images) {
    passed_images += batch_images;
    calibrating.update(done, passed_images, "two passes over each batch");
  };
  const auto folded = fold_batchnorm(model.eager());
  const auto quantized = qat ? qat_quantized_network(model.eager(), *qat)
                             : quantize_network(folded, batches, q);
  calibrating.finish();
  // Written beside --output under another name, and renamed over it once
  // every check passes: a failed check leaves a previous file as it was.
  const auto staging =
      (fs::path(c.output).parent_path() /
       ("." + fs::path(c.output).filename().string() + ".staging.pth"))
          .string();
  const auto remove_staging = [&] {
    std::error_code ec;
    fs::remove(staging, ec);
    fs::remove(metadata_path_for(staging), ec);
  };
  const auto quantization = quantization_json(c, q, qat ? 0 : images);
  write_state_dict(quantized_to_state_dict(quantized), staging);
  write_weights_metadata(model.info(), staging, quantization);

  // The file as a user loads it, on the engine this build runs it with.
  const auto reloaded = InferenceModel::load(staging, false, torch::kCPU);
  torch::NoGradGuard no_grad;
  int64_t agree = 0;
  double kl = 0;
  double max_abs = 0, relative = 0;
  const auto checks = static_cast<int64_t>(batches.size());
  auto verifying = progress_of("verify", checks);
  int64_t verified_images = 0;
  for (size_t b = 0; b < batches.size(); ++b) {
    const auto reference = model.forward(batches[b]);
    const auto int8 = reloaded.forward(batches[b]);
    agree += (int8.argmax(1) == reference.argmax(1)).sum().item<int64_t>();
    kl += torch::kl_div(torch::log_softmax(int8, 1),
                        torch::log_softmax(reference, 1),
                        at::Reduction::Sum,
                        /*log_target=*/true)
              .item<double>();
    if (b == 0) {
      // Rounded as the engine rounds on this CPU.
      const auto simulated = simulate_quantized(
          quantized, batches[b], false, {}, reloaded.engine({}).residual_add());
      max_abs = (int8 - simulated).abs().max().item<double>();
      relative =
          max_abs / std::max(simulated.abs().max().item<double>(), 1e-12);
    }
    verified_images += batches[b].size(0);
    verifying.update(
        static_cast<int64_t>(b) + 1, verified_images, "int8 against fp32");
  }
  verifying.finish();
  const double tolerance = std::max(c.tolerance, kInt8Tolerance);
  const bool ok = relative <= tolerance;
  std::cout << "int8 vs fp32 on "
            << (c.calibration_data.empty() ? "16 images of random pixels"
                                           : "the calibration images")
            << ": top-1 agreement " << 100.0 * agree / images << "% (" << agree
            << "/" << images << "), mean KL divergence " << kl / images << "\n"
            << "verified with mnv2-eval's engine (" << reloaded.engine_for({})
            << ") against the quantized network's LibTorch simulation on "
            << batches.front().size(0) << " images: max abs diff " << max_abs
            << ", max relative diff " << relative << " (tolerance " << tolerance
            << "): " << (ok ? "ok" : "FAILED") << "\n";
  if (!ok) {
    remove_staging();
    std::cerr << "mnv2-export: verification failed; nothing written\n";
    return Outcome::kCheckFailed;
  }
  if (!c.validation_data.empty()) {
    Int8Accuracy accuracy;
    try {
      accuracy = measure_int8_accuracy(c, fp32, reloaded, folded, quantized);
    } catch (...) {
      remove_staging();
      throw;
    }
    std::cout << int8_accuracy_report(accuracy, quantized, c);
    if (c.max_top1_drop >= 0 && accuracy.drop() > c.max_top1_drop) {
      remove_staging();
      std::cerr << "mnv2-export: int8 top-1 is " << accuracy.drop()
                << " points below fp32's on '" << c.validation_data
                << "', more than --max-top1-drop " << c.max_top1_drop
                << "; nothing written\n";
      return Outcome::kCheckFailed;
    }
    auto with_validation = nlohmann::json::parse(quantization);
    with_validation["quantization"]["validation"] =
        nlohmann::json::parse(int8_accuracy_json(accuracy, quantized));
    write_weights_metadata(model.info(), staging, with_validation.dump());
  }
  fs::rename(metadata_path_for(staging), metadata_path_for(c.output));
  fs::rename(staging, c.output);
  if (qat) {
    std::cout << "wrote " << c.output
              << " (int8, the ranges of quantization-aware training)\n";
  } else {
    std::cout << "wrote " << c.output << " (int8, calibrated on " << images
              << " images of '" << c.calibration_data << "', "
              << calibration_method_name(q.method)
              << " ranges, bias correction "
              << (q.bias_correction ? "on" : "off") << ")\n";
  }
  return Outcome::kDone;
}

Outcome export_quantized_onnx(const ExportCommand& c,
                              const InferenceModel& model) {
  if (c.format != "onnx") {
    throw ConfigError("--weights '" + c.weights +
                      "' holds int8 weights, which export to --format onnx "
                      "or tflite");
  }
  onnx_export::write_onnx(to_plain_network(*model.quantized()),
                          {{"mnv2_metadata", model_info_to_json(model.info())}},
                          c.output);
  // OpenCV 4.6 cannot read per-channel DequantizeLinear weights, so the
  // check reads the file back and compares what it holds bit for bit;
  // onnxruntime and OpenVINO run it in the tests (tests/oracle/check_int8.py).
  int64_t compared = 0;
  try {
    compared = onnx_export::verify_int8_onnx(
        to_plain_network(*model.quantized()), c.output);
  } catch (const std::exception& e) {
    std::error_code ec;
    fs::remove(c.output, ec);
    std::cerr << "mnv2-export: verification failed (" << e.what() << "); '"
              << c.output << "' removed\n";
    return Outcome::kCheckFailed;
  }
  std::cout << "wrote " << c.output << " (QDQ ONNX, opset "
            << onnx_export::kInt8Opset << ")\n"
            << "verified by reading it back: the ONNX checker passes and its "
            << compared
            << " codes and steps equal the int8 weights' bit for bit\n";
  return Outcome::kDone;
}

}  // namespace mnv2
