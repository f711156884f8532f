# mnv2_find_optional_package(<package> <version> <found_var>)
#
# find_package(<package> <version> CONFIG) for an optional add-on, which can
# never end the configure. A package's own config may call
# find_package(... REQUIRED) for something it needs (Debian's oneDNN asks for
# OpenCL), and QUIET does not stop that error. So the package is first found
# in a child CMake run; only where that succeeds is it found here too.
# Sets <found_var> to TRUE (with <package>_VERSION; the imported targets are
# in the calling directory) or FALSE and <found_var>_REASON, one line saying
# why (the child's log is in the build tree).
function(mnv2_find_optional_package package version found_var)
  set(probe "${CMAKE_BINARY_DIR}/optional-packages/${package}")
  file(WRITE "${probe}/CMakeLists.txt"
       "cmake_minimum_required(VERSION ${CMAKE_MINIMUM_REQUIRED_VERSION})\n"
       "project(probe_${package} LANGUAGES CXX)\n"
       "find_package(${package} ${version} CONFIG)\n"
       "if(NOT ${package}_FOUND)\n"
       "  message(FATAL_ERROR \"MNV2_PACKAGE_NOT_FOUND\")\n"
       "endif()\n")
  set(hints)
  foreach(var ${package}_DIR ${package}_ROOT CMAKE_PREFIX_PATH CMAKE_CXX_COMPILER)
    if(DEFINED ${var} AND NOT "${${var}}" MATCHES "-NOTFOUND$")
      string(REPLACE ";" "\\;" value "${${var}}")
      list(APPEND hints "-D${var}=${value}")
    endif()
  endforeach()
  file(REMOVE_RECURSE "${probe}/build")
  execute_process(
    COMMAND "${CMAKE_COMMAND}" -S "${probe}" -B "${probe}/build" ${hints}
    RESULT_VARIABLE status
    OUTPUT_VARIABLE output
    ERROR_VARIABLE output)
  file(WRITE "${probe}/probe.log" "${output}")
  if(status EQUAL 0)
    find_package(${package} ${version} CONFIG REQUIRED)
    set(${found_var} TRUE PARENT_SCOPE)
    set(${package}_VERSION "${${package}_VERSION}" PARENT_SCOPE)
    return()
  endif()
  set(${found_var} FALSE PARENT_SCOPE)
  if(output MATCHES "MNV2_PACKAGE_NOT_FOUND")
    set(reason "no ${package} ${version} or newer found: set ${package}_DIR")
  else()
    # The config's first error message, its lines joined into one.
    string(REGEX MATCH "CMake Error[^\n]*\n(([ ]+[^\n]*\n)+)" _ "${output}")
    string(REGEX REPLACE "[ \n]+" " " message "${CMAKE_MATCH_1}")
    string(STRIP "${message}" message)
    set(reason "${package}'s CMake config failed: ${message}")
  endif()
  set(${found_var}_REASON "${reason}; log: ${probe}/probe.log" PARENT_SCOPE)
endfunction()
