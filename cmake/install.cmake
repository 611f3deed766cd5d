# `cmake --install`: the makemore command, libmakemore.a, the public headers, the presets (as
# reference copies: the command carries its own), and the CMake package that makes
# find_package(makemore) give the target makemore::makemore. Included from CMakeLists.txt when
# MAKEMORE_INSTALL is on (the default at top level).
include(CMakePackageConfigHelpers)
set(MAKEMORE_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/makemore)

install(TARGETS makemore_lib EXPORT makemoreTargets ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
if(MAKEMORE_BUILD_CLI)
  install(TARGETS makemore RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endif()
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/makemore DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/presets/ DESTINATION ${CMAKE_INSTALL_DATADIR}/makemore/presets
        FILES_MATCHING PATTERN "*.json")
install(FILES ${PROJECT_SOURCE_DIR}/LICENSE DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/makemore)

install(EXPORT makemoreTargets NAMESPACE makemore:: DESTINATION ${MAKEMORE_CMAKE_DIR})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/makemoreConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/makemoreConfig.cmake INSTALL_DESTINATION ${MAKEMORE_CMAKE_DIR})
# 0.x: a minor release may change the API, so only the same minor version is compatible.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/makemoreConfigVersion.cmake COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/makemoreConfig.cmake ${PROJECT_BINARY_DIR}/makemoreConfigVersion.cmake
        DESTINATION ${MAKEMORE_CMAKE_DIR})
