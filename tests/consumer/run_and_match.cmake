# Runs PROGRAM with ARGS (a list) and passes only if it exits 0 and its
# output, lines joined by "|", matches the regular expression EXPECTED:
# ctest's PASS_REGULAR_EXPRESSION alone ignores the exit status.
#   cmake -DPROGRAM=... "-DARGS=a;b" "-DEXPECTED=..." -P run_and_match.cmake
execute_process(COMMAND ${PROGRAM} ${ARGS} RESULT_VARIABLE rc
                OUTPUT_VARIABLE out ERROR_VARIABLE err)
message("${out}${err}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${PROGRAM} exited with status ${rc}")
endif()
string(REPLACE "\n" "|" joined "${out}")
if(NOT joined MATCHES "${EXPECTED}")
  message(FATAL_ERROR "${PROGRAM}'s output does not match: ${EXPECTED}")
endif()
