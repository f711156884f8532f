#pragma once

#include <mobilenetv2/classifier/inference_model.h>
#include "export/export_command.h"

namespace mnv2 {

/// mnv2-export --format tflite: a float32 TensorFlow Lite model from float
/// weights (checkpoints, state_dicts, Keras .h5, our TorchScript exports),
/// or a full-integer one from an int8 file; written, then read back and
/// compared with the weights bit for bit (LiteRT runs it in the tests).
Outcome export_tflite(const ExportCommand& command,
                      const InferenceModel& model);

}  // namespace mnv2
