#pragma once

#include "data/transforms.h"
#include "eval/eval_commands.h"
#include "eval/inference_model.h"

#include <optional>
#include <string>
#include <vector>

namespace mnv2 {

/// What every mnv2-eval mode starts from: the device, the loaded model, the
/// class names (the model's or --labels) and the eval transform sizes.
struct Prepared {
  torch::Device device = torch::kCPU;
  InferenceModel model;
  std::vector<std::string> class_names;
  EvalTransformOptions transform;
};

/// Throws ConfigError for bad flags, WeightsError for bad weights.
Prepared prepare(const EvalCommand& command);

/// "", "fp32" -> nullopt; "bf16", "fp16" -> the autocast dtype.
/// A one-line warning goes out when `device` is a CPU that would emulate it.
std::optional<c10::ScalarType> amp_dtype_of(const std::string& name,
                                            const torch::Device& device);

/// Logits on the CPU in fp32, without gradients, under optional autocast.
torch::Tensor logits_of(const Prepared& prepared,
                        const torch::Tensor& images,
                        const std::optional<c10::ScalarType>& amp);

}  // namespace mnv2
