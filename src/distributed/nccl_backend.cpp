#include "distributed/nccl_backend.h"

#include "common/errors.h"
#include "distributed/process_group.h"

#ifdef MNV2_WITH_NCCL
#include <nccl.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>

// The NCCL this file sees must be the one libtorch_cuda was built with (the
// wheel's nvidia/nccl), not the CUDA toolkit's: CMake reads the wheel's
// version into MNV2_WHEEL_NCCL_VERSION_CODE.
static_assert(NCCL_VERSION_CODE == MNV2_WHEEL_NCCL_VERSION_CODE,
              "compiled against another nccl.h than the torch wheel's");
#endif

namespace mnv2 {

bool nccl_available() {
#ifdef MNV2_WITH_NCCL
  return true;
#else
  return false;
#endif
}

c10::intrusive_ptr<c10d::Backend> make_nccl_backend(
    const c10::intrusive_ptr<c10d::Store>& store,
    int rank,
    int world_size,
    std::chrono::seconds timeout) {
#ifdef MNV2_WITH_NCCL
  auto options = c10d::ProcessGroupNCCL::Options::create();
  options->timeout = timeout;
  return c10::make_intrusive<c10d::ProcessGroupNCCL>(
      store, rank, world_size, options);
#else
  static_cast<void>(store);
  static_cast<void>(rank);
  static_cast<void>(world_size);
  static_cast<void>(timeout);
  throw ConfigError("this build has no NCCL");
#endif
}

}  // namespace mnv2
