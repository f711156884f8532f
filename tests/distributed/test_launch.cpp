// Launch detection from each launcher's environment, and the one-line
// refusals of contradictory ones.
#include "common/errors.h"
#include "distributed/launch.h"

#include <catch2/catch.hpp>

#include <map>
#include <string>

namespace {

mnv2::Launch launch_from(const std::map<std::string, std::string>& env) {
  return mnv2::detect_launch([&](const char* name) -> const char* {
    const auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  });
}

}  // namespace

TEST_CASE("no launcher: one process", "[distributed]") {
  const auto l = launch_from({{"PATH", "/usr/bin"}});
  CHECK(l.launcher == "none");
  CHECK(l.world_size == 1);
  CHECK_FALSE(l.distributed());
}

TEST_CASE("torchrun's variables", "[distributed]") {
  const auto l = launch_from({{"RANK", "3"},
                              {"WORLD_SIZE", "8"},
                              {"LOCAL_RANK", "1"},
                              {"LOCAL_WORLD_SIZE", "2"},
                              {"MASTER_ADDR", "node0"},
                              {"MASTER_PORT", "29500"},
                              {"TORCHELASTIC_USE_AGENT_STORE", "True"}});
  CHECK(l.launcher == "torchrun");
  CHECK(l.rank == 3);
  CHECK(l.world_size == 8);
  CHECK(l.local_rank == 1);
  CHECK(l.local_world_size == 2);
  CHECK(l.master_addr == "node0");
  CHECK(l.master_port == 29500);
  CHECK(l.agent_store);
}

TEST_CASE("srun's and mpirun's variables", "[distributed]") {
  const auto slurm = launch_from({{"SLURM_PROCID", "5"},
                                  {"SLURM_NTASKS", "16"},
                                  {"SLURM_LOCALID", "1"},
                                  {"MASTER_ADDR", "n1"},
                                  {"MASTER_PORT", "12345"}});
  CHECK(slurm.launcher == "slurm");
  CHECK(slurm.rank == 5);
  CHECK(slurm.world_size == 16);
  CHECK(slurm.local_rank == 1);
  CHECK_FALSE(slurm.agent_store);
  const auto mpi = launch_from({{"OMPI_COMM_WORLD_RANK", "1"},
                                {"OMPI_COMM_WORLD_SIZE", "2"},
                                {"OMPI_COMM_WORLD_LOCAL_RANK", "1"}});
  CHECK(mpi.launcher == "mpirun");
  CHECK(mpi.rank == 1);
  CHECK(mpi.world_size == 2);
  CHECK(mpi.master_addr.empty());  // MPI needs no store
  // A single Slurm task is one process, no store needed.
  CHECK_FALSE(launch_from({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "1"}})
                  .distributed());
}

TEST_CASE("contradictory launches are refused in one line", "[distributed]") {
  using Catch::Contains;
  CHECK_THROWS_WITH(launch_from({{"WORLD_SIZE", "2"}}),
                    Contains("WORLD_SIZE is set but RANK is not"));
  CHECK_THROWS_WITH(launch_from({{"RANK", "0"}}),
                    Contains("RANK is set but WORLD_SIZE is not"));
  CHECK_THROWS_WITH(launch_from({{"RANK", "2"},
                                 {"WORLD_SIZE", "2"},
                                 {"MASTER_ADDR", "a"},
                                 {"MASTER_PORT", "1"}}),
                    Contains("RANK=2 is outside a world of 2 processes"));
  CHECK_THROWS_WITH(launch_from({{"RANK", "0"}, {"WORLD_SIZE", "2"}}),
                    Contains("without MASTER_ADDR and MASTER_PORT"));
  CHECK_THROWS_WITH(launch_from({{"RANK", "x"}, {"WORLD_SIZE", "2"}}),
                    Contains("RANK='x' is not a non-negative integer"));
  CHECK_THROWS_WITH(launch_from({{"RANK", "0"},
                                 {"WORLD_SIZE", "2"},
                                 {"MASTER_ADDR", "a"},
                                 {"MASTER_PORT", "70000"}}),
                    Contains("MASTER_PORT=70000 is not a TCP port"));
  CHECK_THROWS_AS(launch_from({{"RANK", "0"}, {"WORLD_SIZE", "2"}}),
                  mnv2::ConfigError);
}
