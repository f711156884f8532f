#pragma once

// The training BatchNorm's per-channel terms, shared by the fused kernels
// that normalise in their own loops (fused_batchnorm.cpp,
// batchnorm_projection.cpp; private to nn/'s .cpp files).

#include <torch/types.h>

#include <cstdint>
#include <vector>

namespace mnv2::batchnorm_terms {

// The parameter itself when it is already contiguous fp32: a detach, a cast
// and a contiguous() are three dispatches per layer even when they do
// nothing.
torch::Tensor as_float(const torch::Tensor& parameter);

// Per channel, the sums of x and of x^2 over a channels-last fp32 or bf16
// tensor's pixels (channels, then channels more), in double.
std::vector<double> moments(const torch::Tensor& input);

// From moments() over `rows` pixels: a [4, channels] fp32 tensor of the
// rows scale (weight invstd), shift (bias - mean scale), mean and invstd.
// Updates the running statistics as BatchNorm2d does (unbiased variance).
torch::Tensor forward_terms(const std::vector<double>& sums,
                            int64_t rows,
                            const torch::Tensor& weight,
                            const torch::Tensor& bias,
                            torch::Tensor& running_mean,
                            torch::Tensor& running_var,
                            double momentum,
                            double eps);

// From the backward's sums over `rows` pixels of the passed gradient g
// (channels) and of g (x - mean) (channels more), with forward_terms' rows
// and the fp32 weight: the parameters' gradients, and the input's gradient
// as dx = g gain - x slope + offset per channel.
struct BackwardTerms {
  torch::Tensor grad_weight, grad_bias;
  std::vector<float> gain, slope, offset;
};
BackwardTerms backward_terms(const std::vector<double>& sums,
                             int64_t rows,
                             const float* per_channel,
                             const float* weight);

}  // namespace mnv2::batchnorm_terms
