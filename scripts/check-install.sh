#!/usr/bin/env bash
# Checks makemore as a package others use (CI runs it after the tests, on build/):
#   1. `cmake --install build` into a temporary prefix; the installed `makemore --version` and a
#      short `makemore train` run from there;
#   2. examples/ configured with find_package(makemore) against that prefix, built and run;
#   3. examples/ again with makemore's sources added by add_subdirectory (as FetchContent does).
# Usage: scripts/check-install.sh [BUILD_DIR]   (default build/; it must be configured and built)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
words="$here/data/names.txt"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
gen=()
command -v ninja >/dev/null && gen=(-G Ninja)

echo "check-install: installing into a temporary prefix"
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
"$tmp/prefix/bin/makemore" --version
"$tmp/prefix/bin/makemore" train -q --no-report --preset lecture-kaiming --steps 200 -i "$words" -o "$tmp/run" >/dev/null
test -f "$tmp/run/result.json"

echo "check-install: examples/ against the installed package (find_package)"
cmake -S "$here/examples" -B "$tmp/found" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/found" >/dev/null
"$tmp/found/train_and_sample" "$words" "$tmp/example-run" 300

echo "check-install: examples/ with makemore's sources as a subproject (add_subdirectory)"
cmake -S "$here/examples" -B "$tmp/sub" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DMAKEMORE_SOURCE_DIR="$here" \
  ${MM_CMAKE_ARGS:-} >/dev/null
cmake --build "$tmp/sub" -j"$(nproc)" >/dev/null
"$tmp/sub/train_and_sample" "$words" "$tmp/sub-run" 100 | head -1
echo "check-install: ok"
