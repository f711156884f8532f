#pragma once

#include <cstdlib>
#include <functional>
#include <string>

namespace mnv2 {

/// How this process was started, read from the launcher's environment:
/// torchrun (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT), Slurm's
/// srun (SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID, MASTER_ADDR/PORT) or
/// mpirun (OMPI_COMM_WORLD_RANK / _SIZE / _LOCAL_RANK); else one process.
struct Launch {
  std::string launcher = "none";  ///< none | torchrun | slurm | mpirun
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  int local_world_size = 1;
  std::string master_addr;  ///< the TCP store's host (torchrun, slurm)
  int master_port = 0;
  /// torchrun's agent hosts the store (TORCHELASTIC_USE_AGENT_STORE=True):
  /// every rank is a client, as in Python's _create_c10d_store.
  bool agent_store = false;

  bool distributed() const {
    return world_size > 1;
  }
};

/// Reads the environment through `getenv` (replaceable for tests). Throws
/// ConfigError with one line for contradictions (WORLD_SIZE without RANK, a
/// rank outside the world, a missing MASTER_ADDR, ...).
Launch detect_launch(
    const std::function<const char*(const char*)>& getenv = std::getenv);

}  // namespace mnv2
