#pragma once

// A c10d::Backend over MPI for CPU tensors: the PyPI wheel has neither an MPI
// build nor Gloo's headers. Private to distributed/.

#include <torch/csrc/distributed/c10d/Backend.hpp>

#include <chrono>
#include <string>

namespace mnv2 {

/// Initialises MPI once per process (MPI_THREAD_MULTIPLE or SERIALIZED; the
/// calls are serialised either way) and finalises it at exit.
void ensure_mpi_initialised();

/// The MPI backend for MPI_COMM_WORLD. A collective that waits longer than
/// `timeout` for the other ranks (one died, say) ends the process with one
/// line on stderr and status 1: MPI calls cannot be cancelled.
c10::intrusive_ptr<c10d::Backend> make_mpi_backend(
    std::chrono::seconds timeout);

/// Seconds this process has spent inside MPI collectives so far.
double mpi_collective_seconds();

/// This process's rank and the world size as MPI sees them.
int mpi_rank();
int mpi_world_size();

}  // namespace mnv2
