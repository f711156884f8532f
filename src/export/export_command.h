#pragma once

#include "common/errors.h"
#include "common/flag_table.h"

#include <torch/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace mnv2 {

/// What mnv2-export was asked.
struct ExportCommand {
  std::string weights;
  std::string format;  ///< torchscript | onnx | pth | int8 | tflite
  std::string output;
  /// The verification input's size (TFLite: the model's input size); 0:
  /// the weights' crop.
  int64_t img_size = 0;
  double width_mult = 0;          ///< 0: from the weights; else must match them
  bool ema = true;                ///< a checkpoint's EMA weights when present
  bool allow_non_finite = false;  ///< load weights holding NaN/inf
  /// TorchScript: torch::jit::freeze. (optimize_for_inference is not
  /// offered: in LibTorch 2.13 its output cannot be saved and loaded again.)
  bool freeze = false;
  double tolerance = 1e-4;  ///< max relative difference accepted
  // --format int8: post-training quantization.
  std::string calibration_data;  ///< a folder of images (searched recursively)
  int64_t calibration_images = 300;  ///< at most this many, sampled
  int64_t calibration_batch = 32;
  std::string calibration_method = "mse";  ///< mse | percentile | minmax
  double percentile = 99.99;
  bool no_bias_correction = false;
  /// int8: labelled images (one folder per class) on which fp32 and int8
  /// top-1 and each layer's SQNR are measured before the file is kept.
  std::string validation_data;
  /// int8 with validation_data: the largest top-1 drop (points) accepted;
  /// < 0: report only.
  double max_top1_drop = -1;
  /// --format tflite from int8 weights: the input's and output's type,
  /// int8 | uint8 | float32.
  std::string tflite_io = "int8";

  /// One-line reasons the command cannot run; empty when it can.
  std::vector<std::string> problems() const;
};

/// The logits OpenCV's DNN module computes for `x` with the ONNX file at
/// `path`: the consumer that checks ONNX exports.
torch::Tensor run_with_opencv(const std::string& path, const torch::Tensor& x);

/// mnv2-export's flags, each declared once (export_options.cpp).
const FlagTable<ExportCommand>& export_flags();

/// Writes the format, reloads what it wrote with the format's consumer in
/// C++ (torch::jit::load, OpenCV DNN, our state_dict reader), compares with
/// the eager model on a random batch, prints the differences, and returns
/// kCheckFailed (removing the file) when they exceed the tolerance.
Outcome run_export(const ExportCommand& command);

}  // namespace mnv2
