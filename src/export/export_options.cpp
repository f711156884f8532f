#include "export/export_command.h"

#include <mobilenetv2/weights/checkpoint.h>
#include "eval/weights_flags.h"

namespace mnv2 {

const FlagTable<ExportCommand>& export_flags() {
  using C = ExportCommand;
  static const FlagTable<ExportCommand> table = {
      {"weights", "", "weights file", &C::weights, "weights"},
      {"format",
       "",
       "torchscript, onnx, pth, int8 or tflite",
       &C::format,
       "format"},
      {"output", "", "file to write", &C::output, "output"},
      {"img-size",
       "",
       "verification input size, and a TFLite model's input size "
       "(default: the weights' crop size)",
       &C::img_size,
       "img_size"},
      {"width-mult",
       "",
       "expected width (default: read from the weights)",
       &C::width_mult,
       "width_mult"},
      raw_weights_flag<C>(),
      {"freeze",
       "",
       "TorchScript: freeze the module",
       &C::freeze,
       "freeze",
       FlagKind::kSwitch},
      allow_non_finite_flag<C>(),
      {"tolerance",
       "",
       "max relative difference accepted (int8: at least 1e-2)",
       &C::tolerance,
       "tolerance"},
      {"calibration-data",
       "",
       "int8: folder of calibration images (searched recursively)",
       &C::calibration_data,
       "calibration_data"},
      {"calibration-images",
       "",
       "int8: images sampled from the folder, at most",
       &C::calibration_images,
       "calibration_images"},
      {"calibration-batch",
       "",
       "int8: images per calibration batch (the last may be smaller)",
       &C::calibration_batch,
       "calibration_batch"},
      {"calibration-method",
       "",
       "int8: activation ranges by mse, percentile or minmax",
       &C::calibration_method,
       "calibration_method"},
      {"percentile",
       "",
       "int8: the percentile of --calibration-method percentile",
       &C::percentile,
       "percentile"},
      {"no-bias-correction",
       "",
       "int8: keep the biases as trained",
       &C::no_bias_correction,
       "no_bias_correction",
       FlagKind::kSwitch},
      {"validation-data",
       "",
       "int8: labelled images (a folder per class) to measure fp32 and int8 "
       "top-1 on",
       &C::validation_data,
       "validation_data"},
      {"max-top1-drop",
       "",
       "int8: refuse to write a file whose top-1 on --validation-data is "
       "more than this many points below fp32's (default: report only)",
       &C::max_top1_drop,
       "max_top1_drop"},
      {"tflite-io",
       "",
       "tflite from int8 weights: input and output type, int8, uint8 or "
       "float32",
       &C::tflite_io,
       "tflite_io"},
  };
  return table;
}

std::vector<std::string> ExportCommand::problems() const {
  Problems p;
  p.need(!weights.empty(), "--weights is required");
  p.need(!format.empty(), "--format is required");
  p.need(!output.empty(), "--output is required");
  p.need(format.empty() || format == "torchscript" || format == "onnx" ||
             format == "pth" || format == "int8" || format == "tflite",
         "--format must be torchscript, onnx, pth, int8 or tflite, got '" +
             format + "'");
  p.need(tflite_io == "int8" || tflite_io == "uint8" || tflite_io == "float32",
         "--tflite-io must be int8, uint8 or float32, got '" + tflite_io + "'");
  p.need(format == "int8" || calibration_data.empty(),
         "--calibration-data is for --format int8");
  p.need(format == "int8" || validation_data.empty(),
         "--validation-data is for --format int8");
  p.need(max_top1_drop == -1 || (max_top1_drop >= 0 && max_top1_drop <= 100),
         "--max-top1-drop must be in [0, 100] (points of top-1)");
  p.need(max_top1_drop == -1 || !validation_data.empty(),
         "--max-top1-drop needs --validation-data (labelled images)");
  p.need(calibration_images >= 1 && calibration_images <= 100000,
         "--calibration-images must be in [1, 100000]");
  p.need(calibration_batch >= 1 && calibration_batch <= 1024,
         "--calibration-batch must be in [1, 1024]");
  p.need(calibration_method == "mse" || calibration_method == "percentile" ||
             calibration_method == "minmax",
         "--calibration-method must be mse, percentile or minmax, got '" +
             calibration_method + "'");
  p.need(percentile > 0 && percentile <= 100,
         "--percentile must be in (0, 100]");
  // The check's input (the exported model takes any size), or a TFLite
  // model's fixed input size.
  p.need(img_size == 0 || (img_size >= kMinImageSize && img_size <= 1024),
         "--img-size must be in [16, 1024] (the check's input size, a TFLite "
         "model's input size)");
  p.need(width_mult >= 0,
         "--width-mult must be positive (0: from the weights)");
  p.need(tolerance >= 0, "--tolerance must be >= 0");
  return std::move(p).list();
}

}  // namespace mnv2
