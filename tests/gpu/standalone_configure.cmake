# Configures the project as scripts/gpu-check.sh does on a GPU machine
# (MNV2_GPU_CHECK_ONLY=ON) with every library a GPU machine lacks made
# unfindable, and checks that the configure succeeds and that mnv2-gpu-check
# links none of them: what keeps the GPU check buildable with LibTorch alone.
file(REMOVE_RECURSE "${WORK_DIR}")
set(absent OpenCV spdlog nlohmann_json cxxopts Catch2 HDF5 MPI ONNX Protobuf
           ZLIB dnnl)
set(disable)
foreach(package IN LISTS absent)
  list(APPEND disable "-DCMAKE_DISABLE_FIND_PACKAGE_${package}=ON")
endforeach()
execute_process(
  COMMAND "${CMAKE_COMMAND}" -S "${SOURCE_DIR}" -B "${WORK_DIR}" -G Ninja
          -DMNV2_GPU_CHECK_ONLY=ON "-DTorch_DIR=${TORCH_DIR}" ${disable}
  RESULT_VARIABLE rc
  OUTPUT_VARIABLE output
  ERROR_VARIABLE output)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "the GPU check's configure failed (${rc}):\n${output}")
endif()
execute_process(
  COMMAND ninja -C "${WORK_DIR}" -t commands mnv2-gpu-check
  RESULT_VARIABLE rc
  OUTPUT_VARIABLE commands
  ERROR_VARIABLE commands)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "no build commands for mnv2-gpu-check:\n${commands}")
endif()
string(TOLOWER "${commands}" commands)
foreach(library opencv spdlog hdf5 libmpi openmpi onnx protobuf libz.so dnnl catch2)
  string(FIND "${commands}" "${library}" at)
  if(at GREATER_EQUAL 0)
    message(FATAL_ERROR "mnv2-gpu-check's build uses ${library}")
  endif()
endforeach()
string(FIND "${commands}" "mnv2-gpu-check" at)
if(at LESS 0)
  message(FATAL_ERROR "the commands do not build mnv2-gpu-check:\n${commands}")
endif()
message(STATUS "the GPU check configures and links with LibTorch alone")
