#pragma once

#include "distributed/launch.h"

#include <torch/types.h>
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>

#include <chrono>
#include <string>
#include <vector>

namespace mnv2 {

struct DistributedOptions {
  std::string backend = "auto";  ///< auto | nccl | mpi
  /// How long a collective or the rendezvous may wait for the other ranks.
  std::chrono::seconds timeout{600};
};

/// The rendezvous store of a torchrun or srun launch, as Python's
/// _create_c10d_store makes it: a client of torchrun's agent store (under
/// its /worker/attempt_N prefix) or, otherwise, hosted by rank 0.
c10::intrusive_ptr<c10d::Store> rendezvous_store(const Launch& launch,
                                                 std::chrono::seconds timeout);

/// This process's membership of a data-parallel world: a c10d process group
/// with the NCCL backend on CUDA or the MPI backend on CPU.
class Distributed {
 public:
  /// Joins the other ranks. Throws ConfigError for a combination that cannot
  /// work (torchrun on CPU, nccl without CUDA, mpi without mpirun, ...).
  Distributed(const Launch& launch,
              const torch::Device& device,
              const DistributedOptions& options);

  int rank() const {
    return launch_.rank;
  }
  int world_size() const {
    return launch_.world_size;
  }
  const Launch& launch() const {
    return launch_;
  }
  const std::string& backend() const {
    return backend_;
  }
  const c10::intrusive_ptr<c10d::ProcessGroup>& group() const {
    return group_;
  }

  /// In place across ranks.
  void all_reduce(std::vector<torch::Tensor>& tensors,
                  c10d::ReduceOp op = c10d::ReduceOp::SUM);
  /// Rank 0's values everywhere, in place (flattened into large messages,
  /// as DDP broadcasts parameters and buffers).
  void broadcast_from_rank0(std::vector<torch::Tensor>& tensors);
  /// Seconds spent inside collectives so far (MPI; 0 where unknown: NCCL
  /// works asynchronously on its own stream).
  double seconds_in_collectives() const;

 private:
  Launch launch_;
  std::string backend_;
  c10::intrusive_ptr<c10d::ProcessGroup> group_;
};

/// "auto" resolved for a device: nccl on CUDA, mpi on CPU. Throws
/// ConfigError for an unknown name.
std::string resolve_backend(const std::string& name,
                            const torch::Device& device);

/// Whether this build can use NCCL (a CUDA LibTorch with the wheel's NCCL).
bool nccl_available();

}  // namespace mnv2
