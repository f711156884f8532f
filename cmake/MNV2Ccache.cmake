# Compiler cache: a fresh clone reuses objects compiled by any earlier build.
# BASEDIR makes absolute paths relative so two clones share hits; the
# sloppiness settings are what ccache needs to cache TUs that use a PCH.
find_program(MNV2_CCACHE ccache)
if(MNV2_CCACHE AND NOT CMAKE_CXX_COMPILER_LAUNCHER)
  set(CMAKE_CXX_COMPILER_LAUNCHER
      env
      "CCACHE_BASEDIR=${CMAKE_SOURCE_DIR}"
      "CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime"
      "CCACHE_NOHASHDIR=1"
      ${MNV2_CCACHE})
endif()
