# Installs the project into a scratch prefix, then configures, builds and runs
# a project against it with find_package(MobileNetV2 CONFIG REQUIRED), as a
# user's project would: PROJECT (default tests/consumer) and RUN, programs
# with their arguments, separated by "|" (default consumer; each must exit 0).
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
run(${CMAKE_COMMAND} -S "${SOURCE_DIR}/${PROJECT}" -B "${WORK_DIR}/build"
    -G Ninja -DCMAKE_BUILD_TYPE=Release
    "-DCMAKE_PREFIX_PATH=${prefix}" "-DTorch_DIR=${TORCH_DIR}"
    "-Ddnnl_DIR=${DNNL_DIR}")
run(${CMAKE_COMMAND} --build "${WORK_DIR}/build")
string(REPLACE "|" ";" commands "${RUN}")
foreach(command IN LISTS commands)
  separate_arguments(command)
  list(POP_FRONT command program)
  run("${WORK_DIR}/build/${program}" ${command})
endforeach()
