// mnv2-eval: accuracy on a dataset, predictions for images, or a benchmark.
#include "app_support.h"
#include "eval/eval_commands.h"

int main(int argc, char** argv) {
  return mnv2::run_program("mnv2-eval", [&] {
    const auto flags = mnv2::CommandLine<mnv2::EvalCommand>::parse(
        mnv2::eval_flags(),
        "mnv2-eval",
        "Evaluate MobileNetV2 weights (an mnv2-train checkpoint, a "
        "torchvision-compatible .pth such as torchvision's published file, "
        "Keras .h5 weights, or a TorchScript file from mnv2-export); the "
        "weights' padding and preprocessing are used. Modes:\n"
        "  mnv2-eval --weights FILE --data DIR [--json FILE]\n"
        "  mnv2-eval --weights FILE --predict IMAGE... [--topk K] [--labels "
        "FILE]\n"
        "  mnv2-eval --weights FILE --benchmark [--batch-size N] [--img-size "
        "N]",
        argc,
        argv,
        /*allow_extra=*/true);
    if (!flags) {
      return 0;
    }
    mnv2::EvalCommand command;
    flags->apply(command);
    // --predict takes every image named after it.
    if (!flags->extra().empty() && command.images.empty()) {
      throw mnv2::UsageError("unexpected argument '" + flags->extra().front() +
                             "'");
    }
    command.images.insert(
        command.images.end(), flags->extra().begin(), flags->extra().end());
    mnv2::refuse_problems(command.problems());
    return mnv2::exit_status(mnv2::run_eval(command));
  });
}
