#pragma once

#include <mobilenetv2/folded_network.h>

#include <torch/script.h>

#include <string>

namespace mnv2 {

/// The folded network as a scripted module: its convolutions as parameters
/// and a generated forward, in inference mode (`training` registered as
/// false). What mnv2-export saves as TorchScript.
torch::jit::Module scripted_network(const FoldedNetwork& network);

/// The forward method's TorchScript source for `network`.
std::string torchscript_source(const FoldedNetwork& network);

/// The fastest in-process form on CPU: the scripted network frozen, with
/// oneDNN Graph fusion (convolution + bias + ReLU6 + residual add). Not for
/// saving (such graphs do not reload); outputs equal the eager model to
/// about 1e-6 relative (tested).
torch::jit::Module fused_network(const FoldedNetwork& network);

}  // namespace mnv2
