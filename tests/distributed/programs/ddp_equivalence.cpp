// Run under `mpirun -np 2`: DDP's equivalence (ddp_equivalence_check.h) over
// the MPI backend on CPU. Exits 0 when rank 0's parameters equal the
// reference within the tolerance and both ranks hold bitwise-equal
// parameters.
#include "ddp_equivalence_check.h"
#include "two_ranks.h"

#include <cstdio>

int main(int argc, char** argv) {
  const std::string hook = argc > 1 ? argv[1] : "none";
  const auto launch = mnv2::test::two_rank_launch();
  mnv2::Distributed dist(launch, torch::kCPU, {});
  const auto result =
      mnv2::test::check_ddp_equivalence(dist, launch, torch::kCPU, hook);
  if (!result.ranks_equal) {
    std::fprintf(
        stderr, "rank %d: parameters differ from rank 0's\n", launch.rank);
  }
  if (launch.rank == 0) {
    std::printf("%s\n", result.summary.c_str());
  }
  return result.passed ? 0 : 1;
}
