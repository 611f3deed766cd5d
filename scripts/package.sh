#!/usr/bin/env bash
# Builds the Debian package: build-package/package/makemore_VERSION_ARCH.deb, holding under /usr
# the command, libmakemore.a, the headers, the CMake package, the presets and the Python module
# (when python3-dev, pybind11-dev and python3-numpy are installed). Prints the .deb's path last.
# Install it with `sudo apt-get install ./FILE.deb`.
#   scripts/package.sh [BUILD_DIR]   (default build-package/)
#
# Its own build folder, configured for the package whatever build/ is: Release, prefix /usr (so the
# library and CMake package go to Debian's multiarch lib/ folder), WITHOUT MPI (the packaged command
# is the one a user runs alone; under mpirun it says in one line that it was built without MPI),
# and only what is installed: no test suite, no benchmarks. MM_CMAKE_ARGS is passed on (e.g.
# -DCMAKE_CXX_COMPILER_LAUNCHER=ccache).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build-package}
gen=()
command -v ninja >/dev/null && gen=(-G Ninja)
if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S "$here" -B "$build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr -DMM_WITH_MPI=OFF \
    -DMAKEMORE_BUILD_TESTS=OFF -DMAKEMORE_BUILD_BENCHMARKS=OFF ${MM_CMAKE_ARGS:-} >/dev/null
fi
grep -q "^MM_WITH_MPI:BOOL=OFF" "$build/CMakeCache.txt" || {
  echo "package: $build is configured with MPI; the package's command is built without it (remove $build)" >&2
  exit 1
}
cmake --build "$build" -j"$(nproc)" >/dev/null
(cd "$build" && cpack -G DEB -B "$build/package" >/dev/null)
ls "$build"/package/makemore_*.deb
