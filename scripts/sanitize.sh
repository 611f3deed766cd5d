#!/usr/bin/env bash
# The whole test suite under AddressSanitizer + UndefinedBehaviorSanitizer: configures
# build-asan/ with -DMM_SANITIZE=ON (every target built with -fsanitize=address,undefined and
# no recovery from UB), builds it and runs ctest there. Any report fails the test it came from.
#   scripts/sanitize.sh                 # all tests
#   scripts/sanitize.sh -R 'Hostile'    # extra arguments go to ctest
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
out="$here/build-asan"
gen=()
command -v ninja >/dev/null && gen=(-G Ninja)
[ -f "$out/CMakeCache.txt" ] || cmake -S "$here" -B "$out" "${gen[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMM_SANITIZE=ON \
  ${MM_CMAKE_ARGS:-} >/dev/null
cmake --build "$out" -j"$(nproc)"
cd "$out"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:strict_string_checks=1:check_initialization_order=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
ctest --output-on-failure -j"$(nproc)" "$@"
