#include "data/sampler.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

namespace mnv2 {

std::vector<int64_t> epoch_order(int64_t dataset_size,
                                 int64_t epoch,
                                 uint64_t seed,
                                 bool shuffle,
                                 int64_t rank,
                                 int64_t world_size,
                                 bool drop_last,
                                 bool pad) {
  TORCH_CHECK(world_size >= 1 && rank >= 0 && rank < world_size,
              "sampler: rank ",
              rank,
              " is outside world size ",
              world_size);
  std::vector<int64_t> indices(static_cast<size_t>(dataset_size));
  if (shuffle) {
    auto generator = at::make_generator<at::CPUGeneratorImpl>(seed + epoch);
    const auto perm = torch::randperm(
        dataset_size, generator, torch::TensorOptions().dtype(torch::kLong));
    std::copy(perm.data_ptr<int64_t>(),
              perm.data_ptr<int64_t>() + dataset_size,
              indices.begin());
  } else {
    std::iota(indices.begin(), indices.end(), 0);
  }
  size_t total = indices.size();
  if (!pad) {
    // Disjoint shards: no wrap-around duplicates, no truncation.
  } else if (drop_last && dataset_size % world_size != 0) {
    total = static_cast<size_t>(dataset_size / world_size * world_size);
    indices.resize(total);
  } else {
    total = static_cast<size_t>((dataset_size + world_size - 1) / world_size *
                                world_size);
    for (size_t i = 0; indices.size() < total; ++i) {
      indices.push_back(indices[i % static_cast<size_t>(dataset_size)]);
    }
  }
  std::vector<int64_t> shard;
  for (size_t i = static_cast<size_t>(rank); i < total;
       i += static_cast<size_t>(world_size)) {
    shard.push_back(indices[i]);
  }
  return shard;
}

}  // namespace mnv2
