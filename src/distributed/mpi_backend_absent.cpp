// The MPI backend's entry points in a build without MPI (the GPU check's
// build, which needs LibTorch alone): CPU data parallelism is refused with one
// line; CUDA runs use NCCL.
#include "distributed/mpi_backend.h"

#include "common/errors.h"

namespace mnv2 {

void ensure_mpi_initialised() {
  throw ConfigError("this build has no MPI (the CPU data-parallel backend)");
}

double mpi_collective_seconds() {
  return 0.0;
}

int mpi_rank() {
  return 0;
}

int mpi_world_size() {
  return 1;
}

c10::intrusive_ptr<c10d::Backend> make_mpi_backend(
    std::chrono::seconds timeout) {
  static_cast<void>(timeout);
  ensure_mpi_initialised();
  return {};
}

}  // namespace mnv2
