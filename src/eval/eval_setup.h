#pragma once

#include "eval/eval_commands.h"

#include <mobilenetv2/classifier/image_classifier.h>
#include <mobilenetv2/classifier/inference_model.h>

#include <optional>
#include <string>

namespace mnv2 {

/// The weights --weights names, loaded on --device with --engine's choice
/// and --channels-last (what the benchmark measures). Throws ConfigError for
/// bad flags, WeightsError for bad weights.
struct Prepared {
  torch::Device device = torch::kCPU;
  InferenceModel model;
};
Prepared prepare(const EvalCommand& command);

/// The library's mnv2::ImageClassifier as the flags ask for it (device,
/// engine, memory format, --amp-dtype, --resize-size/--crop-size, --labels
/// or ImageNet's names for plain 1000-class weights): what --data and
/// --predict classify with, so that the program reports what a library user
/// gets. Throws ConfigError naming the flag, WeightsError for bad weights.
ImageClassifier open_classifier(const EvalCommand& command);

/// "", "fp32" -> nullopt; "bf16", "fp16" -> the autocast dtype.
/// A one-line warning goes out when `device` is a CPU that would emulate it.
std::optional<c10::ScalarType> amp_dtype_of(const std::string& name,
                                            const torch::Device& device);

}  // namespace mnv2
