# mnv2_write_fake_libtorch(DIR VERSION): a LibTorch CMake config in DIR that
# finds nothing but reports VERSION, for the configure-time version checks
# (no second LibTorch need be installed to test them).
function(mnv2_write_fake_libtorch dir version)
  file(MAKE_DIRECTORY "${dir}")
  file(WRITE "${dir}/TorchConfig.cmake" "set(TORCH_LIBRARIES)\n")
  file(WRITE "${dir}/TorchConfigVersion.cmake"
       "set(PACKAGE_VERSION ${version})\n"
       "set(PACKAGE_VERSION_COMPATIBLE TRUE)\n")
endfunction()
