# Configures the project (model library only) against a oneDNN prefix that
# CASE names, and checks that the configure succeeds and reports the oneDNN
# add-on as not built:
#   failing_config: a dnnl-config.cmake of version 3.2 that needs a package
#                   that is not there (as Debian's oneDNN needs OpenCL)
#   no_config:      a prefix with no dnnl-config.cmake at all
file(REMOVE_RECURSE "${WORK_DIR}")
set(prefix "${WORK_DIR}/prefix/lib/cmake/dnnl")
file(MAKE_DIRECTORY "${prefix}")
if(CASE STREQUAL "failing_config")
  set(reason "dnnl's CMake config failed: By not providing \"FindMNV2NeverInstalledRuntime.cmake\"")
  file(WRITE "${prefix}/dnnl-config.cmake"
       "find_package(MNV2NeverInstalledRuntime REQUIRED)\n")
  file(WRITE "${prefix}/dnnl-config-version.cmake"
       "set(PACKAGE_VERSION 3.2.0)\n"
       "set(PACKAGE_VERSION_COMPATIBLE TRUE)\n")
elseif(CASE STREQUAL "no_config")
  set(reason "no dnnl 3.0 or newer found: set dnnl_DIR")
else()
  message(FATAL_ERROR "unknown CASE '${CASE}'")
endif()
execute_process(
  COMMAND "${CMAKE_COMMAND}" -S "${SOURCE_DIR}" -B "${WORK_DIR}/build" -G Ninja
          -DMNV2_BUILD_APPS=OFF -DMNV2_BUILD_TESTS=OFF
          "-DTorch_DIR=${TORCH_DIR}" "-Ddnnl_DIR=${prefix}"
  RESULT_VARIABLE rc
  OUTPUT_VARIABLE output
  ERROR_VARIABLE output)
string(REGEX MATCH "oneDNN add-on: [^\n]*" line "${output}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "the configure failed (${rc}):\n${output}")
elseif(NOT line MATCHES "^oneDNN add-on: not built \\(.+\\)$")
  message(FATAL_ERROR "no one-line report of the add-on as not built:\n${output}")
endif()
string(FIND "${line}" "not built (${reason}" at)
if(at LESS 0)
  message(FATAL_ERROR "the report does not say why (${reason}): ${line}")
endif()
message(STATUS "${line}")
