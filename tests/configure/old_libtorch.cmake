# Configures the project against a LibTorch older than the oldest it builds
# with (a fake config of version 2.10.0) and checks that the configure fails
# with one line naming the version, the folder and the oldest supported.
include("${CMAKE_CURRENT_LIST_DIR}/fake_libtorch.cmake")
file(REMOVE_RECURSE "${WORK_DIR}")
set(torch_dir "${WORK_DIR}/libtorch-2.10.0/share/cmake/Torch")
mnv2_write_fake_libtorch("${torch_dir}" 2.10.0)
execute_process(
  COMMAND "${CMAKE_COMMAND}" -S "${SOURCE_DIR}" -B "${WORK_DIR}/build" -G Ninja
          -DMNV2_BUILD_APPS=OFF -DMNV2_BUILD_TESTS=OFF "-DTorch_DIR=${torch_dir}"
  RESULT_VARIABLE rc
  OUTPUT_VARIABLE output
  ERROR_VARIABLE output)
string(REGEX REPLACE "([][+.*()^$?|\\])" "\\\\\\1" folder "${torch_dir}")
set(expected "LibTorch 2\\.10\\.0 \\(${folder}\\) is older than 2\\.11, the oldest this project builds with: point Torch_DIR at LibTorch 2\\.11 or newer")
if(rc EQUAL 0 OR NOT output MATCHES "${expected}")
  message(FATAL_ERROR "expected the configure to fail with '${expected}' (exit ${rc}):\n${output}")
endif()
string(REGEX MATCH "${expected}" line "${output}")
message(STATUS "the configure failed as expected: ${line}")
