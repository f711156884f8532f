#include "export/export_command.h"

#include <mobilenetv2/checkpoint.h>
#include "eval/weights_flags.h"

namespace mnv2 {

const FlagTable<ExportCommand>& export_flags() {
  using C = ExportCommand;
  static const FlagTable<ExportCommand> table = {
      {"weights", "", "weights file", &C::weights, "weights"},
      {"format", "", "torchscript, onnx or pth", &C::format, "format"},
      {"output", "", "file to write", &C::output, "output"},
      {"img-size",
       "",
       "verification input size (default: the weights' crop size)",
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
       "max relative difference accepted",
       &C::tolerance,
       "tolerance"},
  };
  return table;
}

std::vector<std::string> ExportCommand::problems() const {
  Problems p;
  p.need(!weights.empty(), "--weights is required");
  p.need(!format.empty(), "--format is required");
  p.need(!output.empty(), "--output is required");
  p.need(format.empty() || format == "torchscript" || format == "onnx" ||
             format == "pth",
         "--format must be torchscript, onnx or pth, got '" + format + "'");
  // Only the check's input: the exported model takes any size.
  p.need(img_size == 0 || (img_size >= kMinImageSize && img_size <= 1024),
         "--img-size must be in [16, 1024] (the size of the check's input; "
         "the exported model takes any size)");
  p.need(width_mult >= 0,
         "--width-mult must be positive (0: from the weights)");
  p.need(tolerance >= 0, "--tolerance must be >= 0");
  return std::move(p).list();
}

}  // namespace mnv2
