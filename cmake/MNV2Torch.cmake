# LibTorch for this build: the user's own (Torch_DIR / CMAKE_PREFIX_PATH) or
# the pinned wheel that scripts/setup.sh installs.
include(MNV2TorchWheel)
mnv2_find_torch(REQUIRED)
message(STATUS "LibTorch ${Torch_VERSION} from ${Torch_DIR}")
# The oldest LibTorch the code builds with: 2.10 lacks
# at::cpu::get_cpu_capabilities() and has another c10d::Reducer constructor.
# Checked per version with scripts/check-libtorch.sh.
set(MNV2_OLDEST_TORCH 2.11)
if(Torch_VERSION VERSION_LESS MNV2_OLDEST_TORCH)
  # One line: CMake leaves a message that starts with a space unwrapped.
  message(FATAL_ERROR
    " LibTorch ${Torch_VERSION} (${Torch_DIR}) is older than ${MNV2_OLDEST_TORCH}, the oldest "
    "this project builds with: point Torch_DIR at LibTorch ${MNV2_OLDEST_TORCH} or newer")
endif()

# Whether this LibTorch was built with CUDA: the CUDA code paths are compiled
# either way, this only decides whether the CUDA runtime is linked.
if(TARGET torch_cuda OR TORCH_CUDA_LIBRARIES)
  set(MNV2_TORCH_HAS_CUDA ON)
else()
  set(MNV2_TORCH_HAS_CUDA OFF)
endif()
message(STATUS "LibTorch with CUDA: ${MNV2_TORCH_HAS_CUDA}")
