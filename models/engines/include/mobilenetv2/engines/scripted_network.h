#pragma once

#include <mobilenetv2/nn/folded_network.h>

#include <torch/script.h>

#include <optional>
#include <string>

namespace mnv2 {

/// The folded network as a scripted module: its convolutions as parameters
/// and a generated forward, in inference mode (`training` registered as
/// false). What mnv2-export saves as TorchScript.
torch::jit::Module scripted_network(const FoldedNetwork& network);

/// The forward method's TorchScript source for `network`.
std::string torchscript_source(const FoldedNetwork& network);

/// The folded network a module from scripted_network() holds, read back
/// into `layout` (a folded network of the same options, whose weights are
/// replaced): nullopt when the module lacks one of its parameters or one
/// has another shape (a frozen module, or TorchScript from elsewhere).
std::optional<FoldedNetwork> folded_from_scripted(
    const torch::jit::Module& module, FoldedNetwork layout);

/// The fastest in-process form on CPU: the scripted network frozen, with
/// oneDNN Graph fusion (convolution + bias + ReLU6 + residual add). Not for
/// saving (such graphs do not reload); outputs equal the eager model to
/// about 1e-6 relative (tested).
torch::jit::Module fused_network(const FoldedNetwork& network);

}  // namespace mnv2
