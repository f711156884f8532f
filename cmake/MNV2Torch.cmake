# LibTorch for this build: the user's own (Torch_DIR / CMAKE_PREFIX_PATH) or
# the pinned wheel that scripts/setup.sh installs.
include(MNV2TorchWheel)
mnv2_find_torch(REQUIRED)
message(STATUS "LibTorch ${Torch_VERSION} from ${Torch_DIR}")

# Whether this LibTorch was built with CUDA: the CUDA code paths are compiled
# either way, this only decides whether the CUDA runtime is linked.
if(TARGET torch_cuda OR TORCH_CUDA_LIBRARIES)
  set(MNV2_TORCH_HAS_CUDA ON)
else()
  set(MNV2_TORCH_HAS_CUDA OFF)
endif()
message(STATUS "LibTorch with CUDA: ${MNV2_TORCH_HAS_CUDA}")
