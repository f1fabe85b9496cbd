# Install rules and the package config, so a user's project can do
#   find_package(ipch REQUIRED)  ->  ipch::conformance, ipch::testing_main, ipch::tcp, ...
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(ipch_export_targets ipch_core ipch_fault ipch_toxics ipch_testing ipch_testing_main ipch_conformance
    ipch_stream ipch_inmem ipch_tcp ipch_unix ipch_fifo ipch_shm ipch_mq ipch_sysv_mq ipch_posix_mq
    ipch_fuzz_replay_main)
foreach(t IN LISTS ipch_export_targets)
  string(REGEX REPLACE "^ipch_" "" short "${t}")
  set_target_properties(${t} PROPERTIES EXPORT_NAME ${short})
endforeach()
install(TARGETS ${ipch_export_targets} EXPORT ipchTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/harness/include/ipch DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
# conformance.h is the one include; it pulls in the group headers beside it.
install(DIRECTORY ${PROJECT_SOURCE_DIR}/harness/conformance/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/ipch/conformance
        FILES_MATCHING PATTERN "*.h")
install(DIRECTORY ${PROJECT_SOURCE_DIR}/transports/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/ipch/transports
        FILES_MATCHING PATTERN "*.h" PATTERN "tests" EXCLUDE)

set(ipch_cmake_dir ${CMAKE_INSTALL_LIBDIR}/cmake/ipch)
install(EXPORT ipchTargets NAMESPACE ipch:: DESTINATION ${ipch_cmake_dir})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/ipchConfig.cmake.in
  ${PROJECT_BINARY_DIR}/ipchConfig.cmake INSTALL_DESTINATION ${ipch_cmake_dir})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/ipchConfigVersion.cmake COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/ipchConfig.cmake ${PROJECT_BINARY_DIR}/ipchConfigVersion.cmake
        ${PROJECT_SOURCE_DIR}/cmake/IpchTests.cmake ${PROJECT_SOURCE_DIR}/cmake/IpchDiscoverScript.cmake
        ${PROJECT_SOURCE_DIR}/cmake/IpchFuzz.cmake
        DESTINATION ${ipch_cmake_dir})
