#pragma once

// The NCCL backend, compiled apart (nccl_backend.cpp) against the torch
// wheel's own nccl.h: the CUDA toolkit's older nccl.h would silently give
// ProcessGroupNCCL::Options another size. Private to distributed/.

#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>

#include <chrono>

namespace mnv2 {

/// Throws ConfigError when this build has no NCCL.
c10::intrusive_ptr<c10d::Backend> make_nccl_backend(
    const c10::intrusive_ptr<c10d::Store>& store,
    int rank,
    int world_size,
    std::chrono::seconds timeout);

}  // namespace mnv2
