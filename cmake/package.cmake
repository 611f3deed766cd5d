# `cpack -G DEB` in the build folder (scripts/package.sh runs it): makemore_VERSION_ARCH.deb with
# what `cmake --install` installs (cmake/install.cmake), under /usr. Included from
# CMakeLists.txt with the install rules.
set(CPACK_PACKAGE_NAME makemore)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR "makemore.cpp")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "Character-level MLP language models (Karpathy's makemore) in C++: command and library")
set(CPACK_PACKAGE_DESCRIPTION
    "The makemore command (train, sample, eval, inspect, report, bench, studies), libmakemore.a, its headers and the CMake package (find_package(makemore) gives makemore::makemore).")
set(CPACK_RESOURCE_FILE_LICENSE ${PROJECT_SOURCE_DIR}/LICENSE)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # makemore_0.1.0_amd64.deb
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "makemore.cpp developers")
set(CPACK_DEBIAN_PACKAGE_SECTION science)
# The command needs libfmt at run time; the library's users compile against Eigen, nlohmann_json
# and fmt (and link libxsmm when the library was built with it): the -dev packages.
set(mm_deb_depends "libc6, libstdc++6, libgcc-s1, libfmt9, zlib1g, libfmt-dev, zlib1g-dev, libeigen3-dev, nlohmann-json3-dev")
if(MAKEMORE_WITH_XSMM)
  string(APPEND mm_deb_depends ", libxsmm-dev")
endif()
set(CPACK_DEBIAN_PACKAGE_DEPENDS "${mm_deb_depends}")
set(CPACK_GENERATOR DEB)
include(CPack)
