#!/usr/bin/env bash
# Quick start 1: set up, build, train the default network (lecture-batchnorm) on names.txt,
# and print samples. Extra arguments go to `makemore train`.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
"$here/scripts/setup.sh"
"$here/scripts/build.sh" makemore  # the command only: not the test suite, benchmarks or Python module
"$here/build/makemore" train -i "$here/data/names.txt" -o "$here/runs/default" "$@"
"$here/build/makemore" sample -o "$here/runs/default" -n 20
