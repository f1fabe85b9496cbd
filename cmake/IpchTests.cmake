# ipch_discover_tests(TARGET LABELS l1 [l2...] [ENVIRONMENT k=v...])
# Registers one ctest test per gtest case, named exactly as gtest names it
# (Conformance/Basic/tcp.RoundTripMaxSize). CMake 3.25's gtest_discover_tests rewrites typed
# suite names and keeps only the first label, hence this small replacement.
set(IPCH_DISCOVER_SCRIPT "${CMAKE_CURRENT_LIST_DIR}/IpchDiscoverScript.cmake")

function(ipch_discover_tests target)
  cmake_parse_arguments(ARG "" "" "LABELS;ENVIRONMENT" ${ARGN})
  set(ctest_file "${CMAKE_CURRENT_BINARY_DIR}/${target}_tests.cmake")
  string(REPLACE ";" "|" labels "${ARG_LABELS}")
  string(REPLACE ";" "|" env "${ARG_ENVIRONMENT}")
  add_custom_command(TARGET ${target} POST_BUILD
    COMMAND ${CMAKE_COMMAND} -D "EXE=$<TARGET_FILE:${target}>" -D "OUT=${ctest_file}"
            -D "LABELS=${labels}" -D "ENV=${env}" -P "${IPCH_DISCOVER_SCRIPT}"
    BYPRODUCTS "${ctest_file}" VERBATIM)
  set_property(DIRECTORY APPEND PROPERTY TEST_INCLUDE_FILES "${ctest_file}")
endfunction()
