// The program of nn/'s tests against the model library whose loops are
// built for one instruction-set level, MNV2_LOOPS_LEVEL (tests/CMakeLists.txt).
// On a CPU without it they would fault, so the program exits first with 77,
// which ctest counts as skipped.
#include <cstdio>
#include <cstdlib>

namespace {

const bool cpu_runs_the_loops = [] {
  if (!__builtin_cpu_supports(MNV2_LOOPS_LEVEL)) {
    std::puts("skipped: this CPU lacks " MNV2_LOOPS_LEVEL
              ", which the loops under test are built for");
    std::fflush(stdout);
    std::_Exit(77);
  }
  return true;
}();

}  // namespace
