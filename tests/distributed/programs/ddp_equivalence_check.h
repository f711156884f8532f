#pragma once

// DDP's equivalence, checked through our DataParallel (c10d's Reducer) on any
// backend and device: k steps on N ranks, each with its own shard, against
// one process that averages the per-shard losses of the same N shards
// (BatchNorm statistics per shard: DDP's exact equivalent). If the Reducer
// reduced nothing, each rank would follow its own shard and the comparison
// fails. Used by the MPI test program and by the GPU check over NCCL.

#include "distributed/launch.h"
#include "distributed/process_group.h"

#include <torch/types.h>

#include <string>

namespace mnv2::test {

struct DdpEquivalence {
  int steps = 0;
  double max_diff = 0;       ///< rank 0 against the reference (0 on others)
  double tolerance = 0;      ///< 1e-5 without compression, 1e-3 with
  double moved = 0;          ///< how far the steps moved the parameters
  bool ranks_equal = false;  ///< bitwise, against rank 0
  bool passed = false;
  std::string summary;  ///< one line for logs and tables
};

/// `hook`: none | fp16 | bf16. Every rank calls it; `device` is this rank's.
DdpEquivalence check_ddp_equivalence(Distributed& distributed,
                                     const Launch& launch,
                                     const torch::Device& device,
                                     const std::string& hook);

}  // namespace mnv2::test
