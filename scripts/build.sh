#!/usr/bin/env bash
# Configures and builds makemore.cpp into build/ (Release, warnings on).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
gen=()
command -v ninja >/dev/null && gen=(-G Ninja)
[ -f "$here/build/CMakeCache.txt" ] || cmake -S "$here" -B "$here/build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release ${MM_CMAKE_ARGS:-} >/dev/null
cmake --build "$here/build" -j"$(nproc)"
