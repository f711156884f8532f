#pragma once

#include "distributed/process_group.h"

#include <torch/nn/module.h>

#include <memory>
#include <string>
#include <vector>

namespace c10d {
class Reducer;
}

namespace mnv2 {

struct DataParallelOptions {
  double first_bucket_mb = 1;  ///< DDP's defaults: 1 MiB, then 25 MiB
  double bucket_mb = 25;
  std::string comm_hook = "none";  ///< none | fp16 | bf16 (compression)
};

/// PyTorch's DistributedDataParallel for one module, from C++: c10d's
/// Reducer averages the gradients bucket by bucket while backward runs.
/// Call `before_forward` and `after_forward` around every training forward
/// pass, as DDP's forward does.
class DataParallel {
 public:
  /// Broadcasts parameters and buffers from rank 0, verifies them across
  /// ranks (as DDP's constructor) and builds the buckets.
  DataParallel(torch::nn::Module& module,
               Distributed& distributed,
               const DataParallelOptions& options);
  ~DataParallel();
  DataParallel(const DataParallel&) = delete;
  DataParallel& operator=(const DataParallel&) = delete;

  /// BatchNorm buffers from rank 0 (DDP's broadcast_buffers=True) and the
  /// Reducer's per-iteration set-up.
  void before_forward(bool sync);
  /// `sync`: the coming backward reduces the gradients; false lets them
  /// accumulate locally (DDP's no_sync), e.g. between accumulation steps.
  void after_forward(bool sync);

 private:
  /// Rank 0's buffers everywhere (DDP's broadcast_buffers).
  void sync_buffers();

  Distributed& distributed_;
  std::vector<torch::Tensor> parameters_;
  std::vector<torch::Tensor> buffers_;
  std::unique_ptr<c10d::Reducer> reducer_;
};

}  // namespace mnv2
