// The program of nn/'s tests against the model library whose loops are
// built for x86-64-v3 (tests/CMakeLists.txt). On a CPU without it they would
// fault, so the program exits first with 77, which ctest counts as skipped.
#include <cstdio>
#include <cstdlib>

namespace {

const bool cpu_runs_the_loops = [] {
  if (!__builtin_cpu_supports("x86-64-v3")) {
    std::puts(
        "skipped: this CPU lacks x86-64-v3 (AVX2, FMA), which the loops "
        "under test are built for");
    std::fflush(stdout);
    std::_Exit(77);
  }
  return true;
}();

}  // namespace
