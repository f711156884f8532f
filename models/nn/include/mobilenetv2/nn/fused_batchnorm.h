#pragma once

#include <torch/nn/modules/batchnorm.h>
#include <torch/types.h>

namespace mnv2 {

/// Training-mode BatchNorm followed by ReLU6 (or by nothing), fused for CPU
/// fp32 or bf16 activations in channels_last memory (bf16: read and written
/// as bf16, computed in fp32 as LibTorch's bf16 BatchNorm computes, the
/// clamp's gradient masked by the stored bf16 output as hardtanh_backward
/// masks it; parameters and statistics fp32): batch statistics in one pass
/// and the normalised, clamped output in a second, and a backward that masks
/// by the clamp and reduces in one pass. Unfused, PyTorch reads and writes
/// each activation about twice as often in training (BatchNorm's passes, the
/// clamp, the clone an in-place ReLU6 costs autograd, hardtanh's backward).
/// Equal to torch::batch_norm (training) then torch::clamp(0, 6) up to float
/// rounding; updates the running statistics as BatchNorm2d does (unbiased
/// variance, `momentum`).
torch::Tensor fused_batchnorm_relu6(const torch::Tensor& input,
                                    const torch::Tensor& weight,
                                    const torch::Tensor& bias,
                                    torch::Tensor running_mean,
                                    torch::Tensor running_var,
                                    double momentum,
                                    double eps,
                                    bool relu6);

/// Whether fused_batchnorm_relu6 takes this input: CPU, channels_last, and
/// fp32 outside autocast or bf16.
bool fused_batchnorm_applies(const torch::Tensor& input);

/// `bn` applied to `input`, then ReLU6 (in place, as torchvision's) when
/// `relu6`: fused_batchnorm_relu6 where the module trains, the switch below
/// is on and the input qualifies; LibTorch's operators otherwise.
torch::Tensor batchnorm_relu6(torch::nn::BatchNorm2dImpl& bn,
                              const torch::Tensor& input,
                              bool relu6);

/// Whether a fused kernel may take over `bn`'s training forward: the fast
/// paths are on (below) and `bn` trains, affine, with running statistics
/// and a momentum (no cumulative average).
bool fuses_training_batchnorm(const torch::nn::BatchNorm2dImpl& bn);

/// Counts a batch in `bn.num_batches_tracked`, as BatchNorm2d's forward
/// does, for a fused kernel that replaces it.
void count_training_batch(torch::nn::BatchNorm2dImpl& bn);

/// A process-wide switch, on by default: off, the modules compute BatchNorm
/// and ReLU6, the depthwise and 1x1 convolutions with their own backward
/// (depthwise_conv.h, pointwise_conv.h) and the expansions
/// (expansion_conv_bn.h) with LibTorch's operators only
/// (mnv2-train --fused-batchnorm=false).
void set_fused_batchnorm_enabled(bool enabled);
bool fused_batchnorm_enabled();

}  // namespace mnv2
