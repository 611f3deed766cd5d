#!/usr/bin/env bash
# Builds the Debian package from build/ (configured and built by scripts/build.sh):
# build/package/makemore_VERSION_ARCH.deb, holding the command, libmakemore.a, the headers, the
# CMake package and the presets under /usr. Install it with `sudo apt-get install ./FILE.deb`.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
[ -f "$build/CPackConfig.cmake" ] || { echo "package: $build is not a configured build folder; run scripts/build.sh first" >&2; exit 1; }
cmake --build "$build" -j"$(nproc)" >/dev/null
(cd "$build" && cpack -G DEB -B "$build/package" >/dev/null)
ls "$build"/package/makemore_*.deb
