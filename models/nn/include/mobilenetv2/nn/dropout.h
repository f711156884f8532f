#pragma once

#include <torch/nn/cloneable.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include <ostream>

namespace mnv2 {

/// Dropout as torch::nn::Dropout computes it (each value zeroed with
/// probability p, the rest scaled by 1 / (1 - p), identity outside
/// training), with its mask drawn in parallel on the CPU. LibTorch draws a
/// CPU mask one value at a time from its generator except where MKL's is
/// used (Intel CPUs only): 0.6 ms of a 48 ms training step of the main job
/// on an AMD EPYC, with the second thread idle. Here each value's draw is
/// SplitMix64's output at its index from one seed taken from LibTorch's
/// default CPU generator, so torch::manual_seed still fixes the masks and
/// they do not depend on the thread count. CUDA tensors, other dtypes and
/// the fast paths switched off (set_fused_batchnorm_enabled) take
/// torch::dropout.
torch::Tensor parallel_dropout(const torch::Tensor& input,
                               double p,
                               bool training);

/// The module form, for the classifier: no parameters, so a state_dict is
/// the same as with torch::nn::Dropout.
class DropoutImpl : public torch::nn::Cloneable<DropoutImpl> {
 public:
  explicit DropoutImpl(double p = 0.5);
  void reset() override {}
  torch::Tensor forward(const torch::Tensor& input);
  void pretty_print(std::ostream& stream) const override;
  double p;
};
TORCH_MODULE(Dropout);

}  // namespace mnv2
