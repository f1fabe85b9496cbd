# ipch_discover_tests(TARGET LABELS l1 [l2...] [ENVIRONMENT k=v...] [SERIAL])
# Registers one ctest test per gtest case, named exactly as gtest names it
# (Conformance/Basic/tcp.RoundTripMaxSize). CMake 3.25's gtest_discover_tests rewrites typed
# suite names and keeps only the first label, hence this small replacement.
set(IPCH_DISCOVER_SCRIPT "${CMAKE_CURRENT_LIST_DIR}/IpchDiscoverScript.cmake")

function(ipch_discover_tests target)
  cmake_parse_arguments(ARG "SERIAL" "" "LABELS;ENVIRONMENT" ${ARGN})
  set(ctest_file "${CMAKE_CURRENT_BINARY_DIR}/${target}_tests.cmake")
  string(REPLACE ";" "|" labels "${ARG_LABELS}")
  string(REPLACE ";" "|" env "${ARG_ENVIRONMENT}")
  add_custom_command(TARGET ${target} POST_BUILD
    COMMAND ${CMAKE_COMMAND} -D "EXE=$<TARGET_FILE:${target}>" -D "OUT=${ctest_file}"
            -D "LABELS=${labels}" -D "ENV=${env}" -D "SERIAL=${ARG_SERIAL}" -P "${IPCH_DISCOVER_SCRIPT}"
    BYPRODUCTS "${ctest_file}" VERBATIM)
  set_property(DIRECTORY APPEND PROPERTY TEST_INCLUDE_FILES "${ctest_file}")
endfunction()

# ipch_battery_sources(src...): for the files that instantiate the battery (IPCH_INSTANTIATE_*),
# or any test-only file.
# One instantiation is hundreds of typed test cases; at -O2 -g it takes ~2.5x as long to compile
# as at -O1 -g1, for nothing a test needs (the transport's own library keeps its flags, and line
# tables are enough for a sanitizer's file:line reports). Debug builds keep -O0.
function(ipch_battery_sources)
  set_property(SOURCE ${ARGN} APPEND PROPERTY COMPILE_OPTIONS "$<$<NOT:$<CONFIG:Debug>>:-O1>" "-g1")
endfunction()
