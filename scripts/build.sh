#!/usr/bin/env bash
# Configures and builds makemore.cpp into build/ (Release, warnings on): everything, or only the
# targets named (scripts/demo.sh builds `makemore` alone, not the test suite).
#   scripts/build.sh [TARGET...]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
gen=()
command -v ninja >/dev/null && gen=(-G Ninja)
# MM_WITH_MPI=1: with MPI studies (docs/cluster.md; scripts/setup.sh installs Open MPI for it).
mpi=()
[ "${MM_WITH_MPI:-0}" = 1 ] && mpi=(-DMM_WITH_MPI=ON)
[ -f "$here/build/CMakeCache.txt" ] || cmake -S "$here" -B "$here/build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release "${mpi[@]}" ${MM_CMAKE_ARGS:-} >/dev/null
targets=()
[ $# -gt 0 ] && targets=(--target "$@")
cmake --build "$here/build" -j"$(nproc)" "${targets[@]}"
