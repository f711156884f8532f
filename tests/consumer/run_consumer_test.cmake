# Installs the project into a scratch prefix, then configures, builds and runs
# a project against it with find_package(MobileNetV2 CONFIG REQUIRED), as a
# user's project would: only the prefix and LibTorch (TORCH_DIR) are given,
# and DNNL_DIR as dnnl_DIR where set. PROJECT (default tests/consumer) and
# RUN, programs with their arguments, separated by "|" (default consumer;
# each must exit 0; none with BUILD_ONLY). With EXPECT_ERROR (a regex), the
# configure, given the extra cache entries in CONFIGURE_ARGS ("|"-separated),
# must instead fail with a message matching it. FAKE_TORCH_VERSION: the
# consumer's LibTorch is a fake config reporting that version instead.
if(NOT PROJECT)
  set(PROJECT tests/consumer)
endif()
if(NOT RUN)
  set(RUN consumer)
endif()
file(REMOVE_RECURSE "${WORK_DIR}")
set(prefix "${WORK_DIR}/prefix")

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}")
  endif()
endfunction()

run(${CMAKE_COMMAND} --install "${BUILD_DIR}" --prefix "${prefix}")
if(FAKE_TORCH_VERSION)
  include("${SOURCE_DIR}/tests/configure/fake_libtorch.cmake")
  set(TORCH_DIR "${WORK_DIR}/libtorch-${FAKE_TORCH_VERSION}/share/cmake/Torch")
  mnv2_write_fake_libtorch("${TORCH_DIR}" ${FAKE_TORCH_VERSION})
endif()
set(configure ${CMAKE_COMMAND} -S "${SOURCE_DIR}/${PROJECT}" -B "${WORK_DIR}/build"
    -G Ninja -DCMAKE_BUILD_TYPE=Release
    "-DCMAKE_PREFIX_PATH=${prefix}" "-DTorch_DIR=${TORCH_DIR}")
if(DNNL_DIR)
  list(APPEND configure "-Ddnnl_DIR=${DNNL_DIR}")
endif()
if(CONFIGURE_ARGS)
  string(REPLACE "|" ";" extra "${CONFIGURE_ARGS}")
  list(APPEND configure ${extra})
endif()
if(EXPECT_ERROR)
  execute_process(COMMAND ${configure} RESULT_VARIABLE rc
                  OUTPUT_VARIABLE output ERROR_VARIABLE output)
  if(rc EQUAL 0 OR NOT output MATCHES "${EXPECT_ERROR}")
    message(FATAL_ERROR "expected the configure to fail with '${EXPECT_ERROR}' "
                        "(exit ${rc}):\n${output}")
  endif()
  string(REGEX MATCH "${EXPECT_ERROR}[^\n]*" line "${output}")
  message(STATUS "the configure failed as expected: ${line}")
  return()
endif()
run(${configure})
run(${CMAKE_COMMAND} --build "${WORK_DIR}/build")
if(BUILD_ONLY)
  return()
endif()
string(REPLACE "|" ";" commands "${RUN}")
foreach(command IN LISTS commands)
  separate_arguments(command)
  list(POP_FRONT command program)
  run("${WORK_DIR}/build/${program}" ${command})
endforeach()
