#pragma once

#include <mobilenetv2/classifier/inference_model.h>
#include "export/export_command.h"

namespace mnv2 {

/// mnv2-export --format int8: calibrates on the images of
/// --calibration-data (the weights' evaluation preprocessing), quantizes,
/// writes the int8 file and its `<stem>.json`, reloads it and checks the
/// int8 engine against the quantized network's LibTorch simulation; prints
/// how often int8 and fp32 agree on the calibration images.
Outcome export_int8(const ExportCommand& command, const InferenceModel& model);

/// mnv2-export --weights INT8 --format onnx: the quantized network as QDQ
/// ONNX (opset 13), reloaded with OpenCV's DNN module and compared with the
/// int8 engine.
Outcome export_quantized_onnx(const ExportCommand& command,
                              const InferenceModel& model);

}  // namespace mnv2
