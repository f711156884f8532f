# Helpers for LibTorch taken from the PyPI `torch` wheel (also installed with
# the package config, so that consumers of MobileNetV2 get the same fixes).
#
# The CUDA wheel's libtorch_cuda.so finds its CUDA libraries (NCCL, cuDNN, ...)
# through its own RPATH in site-packages/nvidia/*/lib. The CUDA toolkit's
# directory, added to the link line by TorchConfig, would otherwise be searched
# first by the linker and give an older NCCL, so name the wheel's directories
# explicitly with -rpath-link. At run time the library's RPATH still decides.
function(mnv2_torch_wheel_link_fixes torch_dir)
  get_filename_component(_site "${torch_dir}/../../../.." ABSOLUTE)
  file(GLOB _nvidia_libs LIST_DIRECTORIES true "${_site}/nvidia/*/lib")
  foreach(_dir IN LISTS _nvidia_libs)
    if(IS_DIRECTORY "${_dir}")
      set_property(TARGET torch APPEND PROPERTY
                   INTERFACE_LINK_OPTIONS "LINKER:-rpath-link,${_dir}")
    endif()
  endforeach()
endfunction()

# LibTorch's libraries export copies of libstdc++'s std::filesystem that they
# link statically (pytorch/pytorch#133437). A program's own std::filesystem
# calls bind to the first library in its NEEDED list that defines them, and
# libtorch.so comes before libstdc++.so.6 there. In 2.10 and 2.11 libtorch.so's
# copy jumps to address 0 (std::filesystem::remove_all, for one), so every
# program that links LibTorch is linked to libstdc++ first.
function(mnv2_torch_libstdcxx_first)
  set_property(TARGET torch APPEND PROPERTY INTERFACE_LINK_OPTIONS
               "LINKER:--push-state,--no-as-needed,-lstdc++,--pop-state")
endfunction()

# Find LibTorch. Without TORCH_CUDA_ARCH_LIST a CUDA LibTorch tries to detect a
# GPU and adds -gencode flags with a warning; our code has no CUDA kernels, so
# any fixed list will do.
macro(mnv2_find_torch)
  if(NOT DEFINED TORCH_CUDA_ARCH_LIST AND NOT DEFINED ENV{TORCH_CUDA_ARCH_LIST})
    set(TORCH_CUDA_ARCH_LIST "8.0;9.0")
  endif()
  find_package(Torch ${ARGN})
  if(TARGET torch AND EXISTS "${Torch_DIR}")
    mnv2_torch_wheel_link_fixes("${Torch_DIR}")
    mnv2_torch_libstdcxx_first()
  endif()
endmacro()
