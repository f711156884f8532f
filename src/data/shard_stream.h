#pragma once

// One rank's samples for an epoch, streamed from its shards.

#include "data/dataset.h"
#include "data/shard_reader.h"

#include <cstdint>
#include <memory>
#include <vector>

namespace mnv2 {

struct ShardStreamOptions {
  int64_t epoch = 0;
  uint64_t seed = 0;
  bool shuffle = false;
  /// Samples held for shuffling (webdataset's shuffle(bufsize)).
  int64_t shuffle_buffer = 1000;
  int64_t rank = 0;
  int64_t world_size = 1;
  /// Samples in the epoch (shard_samples_of_rank).
  int64_t length = 0;
};

/// One rank's samples for one epoch, in a fixed order given (seed, epoch,
/// rank): its shards in an order shuffled per pass, each read sequentially
/// into a bounded shuffle buffer from which samples leave at random. A pass
/// over every shard ends with the buffer drained, so each sample comes once
/// before any comes twice; padding starts a new pass.
class ShardStream {
 public:
  ShardStream(const Dataset& dataset,
              ShardStreamOptions options,
              ShardProblem problem);
  ~ShardStream();
  ShardStream(const ShardStream&) = delete;
  ShardStream& operator=(const ShardStream&) = delete;

  /// The next `count` samples, fewer at the end of the epoch.
  std::vector<ShardSample> take(int64_t count);

 private:
  struct State;
  std::unique_ptr<State> s_;
};

}  // namespace mnv2
