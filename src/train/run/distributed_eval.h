#pragma once

#include "distributed/process_group.h"
#include "eval/evaluate.h"

namespace mnv2 {

/// `evaluate` on this rank's shard of `loader` (disjoint shards: see
/// LoaderOptions::pad_shards), then the counts of every rank added up: the
/// figures equal one process evaluating the whole set. With no
/// `distributed`, plain `evaluate`.
EvalResult evaluate_across_ranks(
    const std::function<torch::Tensor(const torch::Tensor&)>& forward,
    DataLoader& loader,
    int64_t num_classes,
    const EvalOptions& options,
    Distributed* distributed);

}  // namespace mnv2
