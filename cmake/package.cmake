# `cpack -G DEB` in the build folder (scripts/package.sh runs it, in build-package/, configured
# without MPI): makemore_VERSION_ARCH.deb with what `cmake --install` installs (cmake/install.cmake
# and the Python module's rules in python/CMakeLists.txt), under /usr. Included from CMakeLists.txt
# with the install rules.
set(CPACK_PACKAGE_NAME makemore)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR "makemore.cpp")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "Character-level MLP language models (Karpathy's makemore) in C++: command and library")
set(CPACK_PACKAGE_DESCRIPTION
    "The makemore command (train, sample, eval, inspect, report, bench, studies), libmakemore.a, its headers, the CMake package (find_package(makemore) gives makemore::makemore) and, when built, the Python module makemore.")
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
# The Python module, when built (python/CMakeLists.txt), is in the package under
# /usr/lib/python3.X/dist-packages; python3 writes its bytecode there (__pycache__) on import as
# root, which the prerm script removes so that `apt-get remove` leaves no folder behind.
if(MM_PYTHON_DEB_DEPENDS)
  string(APPEND mm_deb_depends ", ${MM_PYTHON_DEB_DEPENDS}")
  file(CONFIGURE OUTPUT ${PROJECT_BINARY_DIR}/deb/prerm CONTENT
       "#!/bin/sh\nset -e\nrm -rf ${CPACK_PACKAGING_INSTALL_PREFIX}/${MM_PYTHON_INSTALL_DIR}/makemore/__pycache__\n")
  set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${PROJECT_BINARY_DIR}/deb/prerm)
  set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION TRUE)  # the script 0755
endif()
set(CPACK_DEBIAN_PACKAGE_DEPENDS "${mm_deb_depends}")
set(CPACK_GENERATOR DEB)
include(CPack)
