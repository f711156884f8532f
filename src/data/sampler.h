#pragma once

#include <cstdint>
#include <vector>

namespace mnv2 {

/// The sample order of one epoch, as torch.utils.data.DistributedSampler
/// gives it: a permutation from torch.randperm with a generator seeded
/// `seed + epoch` (same numbers as Python), padded by wrapping around to a
/// multiple of `world_size` (or truncated when `drop_last`), then every
/// `world_size`-th index starting at `rank`. Without `pad`, the shards are
/// disjoint and may differ in size by one (every sample exactly once across
/// ranks: what distributed evaluation needs).
std::vector<int64_t> epoch_order(int64_t dataset_size,
                                 int64_t epoch,
                                 uint64_t seed,
                                 bool shuffle,
                                 int64_t rank = 0,
                                 int64_t world_size = 1,
                                 bool drop_last = false,
                                 bool pad = true);

}  // namespace mnv2
