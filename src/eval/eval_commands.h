#pragma once

#include "common/errors.h"
#include "common/flag_table.h"

#include <cstdint>
#include <string>
#include <vector>

namespace mnv2 {

/// What mnv2-eval was asked; one of the three modes runs.
struct EvalCommand {
  std::string weights;
  bool ema = true;  ///< a checkpoint's EMA weights when it has them
  bool allow_non_finite = false;  ///< load weights holding NaN/inf
  std::string device = "auto";
  std::string amp_dtype;      ///< "", "bf16" or "fp16"
  bool channels_last = true;  ///< NHWC memory (faster on CPU)
  /// fused: fp32 on CPU through the folded, oneDNN-fused network; eager:
  /// the MobileNetV2 module as trained.
  std::string engine = "fused";
  int threads = 0;
  int workers = 0;
  int64_t batch_size = 64;
  /// <= 0: the weights' own settings (256/224 for plain torchvision files).
  int64_t resize_size = 0;
  int64_t crop_size = 0;
  std::string labels;  ///< class-name file overriding the weights' names

  // --data: accuracy report
  std::string data;
  std::string json;        ///< summary JSON path
  std::string report_dir;  ///< confusion CSV/PNG folder (default: beside json)
  bool strict_data = false;
  /// Images declaring more pixels are refused before decoding (PIL's
  /// default).
  int64_t max_image_pixels = 178956970;

  // --predict
  std::vector<std::string> images;  ///< files, or folders searched for them
  std::string csv;                  ///< the top-k of every image as CSV rows
  int64_t topk = 5;

  // --benchmark
  bool benchmark = false;
  /// dtypes measured; empty: --amp-dtype's, else those native on the device
  std::vector<std::string> dtypes;
  /// input side; 0: the weights' evaluation crop (224 without metadata)
  int64_t img_size = 0;
  int64_t iterations = 30;

  /// One-line reasons the command cannot run (flags missing, out of range,
  /// not exactly one mode); empty when it can.
  std::vector<std::string> problems() const;
};

/// mnv2-eval's flags, each declared once (eval_options.cpp).
const FlagTable<EvalCommand>& eval_flags();

/// Runs the mode the command names (one of the three below).
Outcome run_eval(const EvalCommand& command);
/// Accuracy, per-class report, confusion matrix (CSV + PNG) and JSON.
Outcome run_eval_on_data(const EvalCommand& command);
/// Top-k classes with names and probabilities per image.
Outcome run_predict(const EvalCommand& command);
/// Latency (batch 1) and throughput (batch N) per dtype (fp32 and the 16-bit
/// types the device runs natively, unless named), channels_last off/on: a
/// table, plus JSON with --json.
Outcome run_benchmark(const EvalCommand& command);

}  // namespace mnv2
