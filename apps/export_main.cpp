// mnv2-export: TorchScript, ONNX or torchvision-compatible weights.
#include "app_support.h"
#include "export/export_command.h"

int main(int argc, char** argv) {
  return mnv2::run_program("mnv2-export", [&] {
    const auto flags = mnv2::CommandLine<mnv2::ExportCommand>::parse(
        mnv2::export_flags(),
        "mnv2-export",
        "Export MobileNetV2 weights (an mnv2-train checkpoint, a "
        "torchvision-compatible .pth or Keras .h5 weights) as TorchScript or "
        "ONNX (BatchNorm folded, inference only) or as a .pth with its .json "
        "metadata (padding, preprocessing). Every export is reloaded and "
        "checked against the eager model.",
        argc,
        argv);
    if (!flags) {
      return 0;
    }
    mnv2::ExportCommand command;
    flags->apply(command);
    mnv2::refuse_problems(command.problems());
    return mnv2::exit_status(mnv2::run_export(command));
  });
}
