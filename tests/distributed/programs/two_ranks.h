#pragma once

// The start of every 2-rank test program: one thread per rank (the machine
// has 2 cores) and an MPI world of exactly two.

#include "distributed/launch.h"

#include <ATen/Parallel.h>

#include <cstdio>
#include <cstdlib>

namespace mnv2::test {

/// This rank's launch; exits with status 2 outside `mpirun -np 2`.
inline Launch two_rank_launch() {
  at::set_num_threads(1);
  const auto launch = detect_launch();
  if (launch.world_size != 2) {
    std::fprintf(stderr, "run me under mpirun -np 2\n");
    std::exit(2);
  }
  return launch;
}

}  // namespace mnv2::test
