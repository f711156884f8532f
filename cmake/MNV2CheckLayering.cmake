# Checks the engine's include directions (see src/CMakeLists.txt).
#
# Checks the include directions between the folders of a tree: the engine's
# (src/, see src/CMakeLists.txt) and the model library's (models/, see
# models/CMakeLists.txt).
#
# Rules: a list of `folder:allowed,folders:private,headers.h` entries. A file
# in <tree>/<folder>/ may include "<prefix><other>/x.h" only when <other> is
# <folder> or one of its allowed folders, and a private header only from its
# own folder. The prefix is "" for the engine ("data/dataset.h") and
# "mobilenetv2/" for the model library (<mobilenetv2/nn/options.h>).
# Includes that do not start with a folder of the tree (LibTorch, the
# standard library, the other tree) are not its business here.
#
# Used two ways:
#   include(MNV2CheckLayering) + mnv2_check_layering(<dir> <rules> [<prefix>])
#       at configure time: a violation is a fatal error;
#   cmake -DSRC=<dir> -DRULES_FILE=<file holding the rules> [-DPREFIX=mobilenetv2/]
#         -P MNV2CheckLayering.cmake
#       as a test: prints every violation and exits non-zero.

if(CMAKE_SCRIPT_MODE_FILE)
  cmake_minimum_required(VERSION 3.25)  # IN_LIST
endif()

function(mnv2_layering_violations src_dir rules prefix out_var)
  set(folders)
  foreach(rule IN LISTS rules)
    string(REPLACE ":" ";" parts "${rule}")
    list(GET parts 0 folder)
    list(APPEND folders ${folder})
  endforeach()
  set(found)
  foreach(rule IN LISTS rules)
    string(REPLACE ":" ";" parts "${rule}")
    list(LENGTH parts n)
    list(GET parts 0 folder)
    set(allowed)
    set(private)
    if(n GREATER 1)
      list(GET parts 1 allowed)
      string(REPLACE "," ";" allowed "${allowed}")
    endif()
    list(APPEND allowed ${folder})
    file(GLOB_RECURSE files "${src_dir}/${folder}/*.h" "${src_dir}/${folder}/*.cpp")
    foreach(file IN LISTS files)
      file(STRINGS "${file}" lines REGEX "^[ \t]*#[ \t]*include[ \t]*[\"<]${prefix}")
      foreach(line IN LISTS lines)
        if(NOT line MATCHES "[\"<]${prefix}([^\"/>]+)/([^\">]+)[\">]")
          continue()
        endif()
        set(target_folder "${CMAKE_MATCH_1}")
        set(header "${CMAKE_MATCH_2}")
        if(NOT target_folder IN_LIST folders)
          continue()
        endif()
        file(RELATIVE_PATH where "${src_dir}" "${file}")
        if(NOT target_folder IN_LIST allowed)
          string(REPLACE ";" ", " allowed_text "${allowed}")
          list(APPEND found "${where} includes ${target_folder}/${header}: ${folder}/ may include only ${allowed_text}")
          continue()
        endif()
        if(NOT target_folder STREQUAL folder)
          # Private headers of the included folder.
          foreach(other IN LISTS rules)
            string(REPLACE ":" ";" other_parts "${other}")
            list(LENGTH other_parts m)
            list(GET other_parts 0 other_folder)
            if(other_folder STREQUAL target_folder AND m GREATER 2)
              list(GET other_parts 2 other_private)
              string(REPLACE "," ";" other_private "${other_private}")
              if(header IN_LIST other_private)
                list(APPEND found "${where} includes ${target_folder}/${header}, which is private to ${target_folder}/")
              endif()
            endif()
          endforeach()
        endif()
      endforeach()
    endforeach()
  endforeach()
  set(${out_var} "${found}" PARENT_SCOPE)
endfunction()

function(mnv2_check_layering src_dir rules)
  set(prefix "${ARGV2}")
  mnv2_layering_violations("${src_dir}" "${rules}" "${prefix}" found)
  if(found)
    string(REPLACE ";" "\n  " text "${found}")
    message(FATAL_ERROR "include directions broken (see ${src_dir}/CMakeLists.txt):\n  ${text}")
  endif()
endfunction()

if(CMAKE_SCRIPT_MODE_FILE AND DEFINED SRC)
  file(READ "${RULES_FILE}" rules)
  get_filename_component(SRC "${SRC}" ABSOLUTE)
  mnv2_layering_violations("${SRC}" "${rules}" "${PREFIX}" found)
  list(LENGTH found count)
  foreach(violation IN LISTS found)
    message(NOTICE "${violation}")
  endforeach()
  if(count GREATER 0)
    message(FATAL_ERROR "${count} include(s) against the directions")
  endif()
  message(NOTICE "include directions respected in ${SRC}")
endif()
