#include <mobilenetv2/nn/dropout.h>

#include <mobilenetv2/nn/fused_batchnorm.h>
#include <mobilenetv2/util/splitmix64.h>
#include "cpu_loops.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/DistributionsHelper.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdint>
#include <mutex>

namespace mnv2 {

namespace {

// Values per parallel task: a few microseconds of hashing.
constexpr int64_t kValuesPerTask = int64_t{1} << 14;

// One draw from LibTorch's default CPU generator, as its own random
// operators take theirs (under the generator's lock).
uint64_t seed_from_default_generator() {
  auto generator = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(generator.mutex());
  return at::check_generator<at::CPUGeneratorImpl>(generator)->random64();
}

MNV2_VECTOR_CLONES
void fill_mask(float* mask,
               int64_t begin,
               int64_t end,
               uint64_t seed,
               uint32_t keep_below,
               float scale) {
  for (int64_t i = begin; i < end; ++i) {
    // The top 24 bits: a uniform draw from 2^24 values.
    const auto draw = static_cast<uint32_t>(
        splitmix64_at(seed, static_cast<uint64_t>(i)) >> 40);
    mask[i] = draw < keep_below ? scale : 0.f;
  }
}

// 0 or 1 / (1 - p) per value, dense in `input`'s layout.
torch::Tensor dropout_mask(const torch::Tensor& input, double p) {
  auto mask = torch::empty_like(input, input.options().dtype(torch::kFloat));
  const uint64_t seed = seed_from_default_generator();
  // Kept when the draw is below (1 - p) 2^24: probability 1 - p to 6e-8.
  const auto keep_below =
      static_cast<uint32_t>(std::ceil((1.0 - p) * double(1 << 24)));
  // As torch::dropout scales: 1 / (1 - p) in the tensor's dtype.
  const float scale = 1.f / static_cast<float>(1.0 - p);
  float* values = mask.data_ptr<float>();
  cpu_loops::parallel_rows(
      mask.numel(), kValuesPerTask, [&](int64_t begin, int64_t end) {
        fill_mask(values, begin, end, seed, keep_below, scale);
      });
  return mask;
}

bool draws_its_own_mask(const torch::Tensor& input) {
  return fused_batchnorm_enabled() && input.device().is_cpu() &&
         (input.scalar_type() == torch::kFloat ||
          input.scalar_type() == torch::kBFloat16) &&
         input.is_non_overlapping_and_dense();
}

}  // namespace

torch::Tensor parallel_dropout(const torch::Tensor& input,
                               double p,
                               bool training) {
  TORCH_CHECK(p >= 0 && p <= 1, "dropout: p must be in [0, 1], got ", p);
  if (!training || p == 0) {
    return input;
  }
  if (p == 1 || !draws_its_own_mask(input)) {
    return torch::dropout(input, p, training);
  }
  return input * dropout_mask(input, p).to(input.scalar_type());
}

DropoutImpl::DropoutImpl(double p) : p(p) {
  TORCH_CHECK(p >= 0 && p <= 1, "dropout: p must be in [0, 1], got ", p);
}

torch::Tensor DropoutImpl::forward(const torch::Tensor& input) {
  return parallel_dropout(input, p, is_training());
}

void DropoutImpl::pretty_print(std::ostream& stream) const {
  stream << "mnv2::Dropout(p=" << p << ")";
}

}  // namespace mnv2
