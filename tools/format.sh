#!/usr/bin/env bash
# Applies the house style (.clang-format) to every C++ file git tracks.
#   tools/format.sh          rewrite the files in place
#   tools/format.sh --check  list the files that differ and exit 1 (what CI runs)
set -euo pipefail
cd "$(dirname "$0")/.."
fmt=$(command -v clang-format-14 || command -v clang-format || true)
[ -n "$fmt" ] || { echo "format.sh: clang-format not found: install clang-format (scripts/setup.sh does)" >&2; exit 1; }
mapfile -t files < <(git ls-files '*.cpp' '*.h' '*.hpp' '*.cc')
if [ "${1:-}" = "--check" ]; then
  bad=0
  for f in "${files[@]}"; do
    if ! "$fmt" --dry-run -Werror "$f" >/dev/null 2>&1; then echo "not formatted: $f"; bad=1; fi
  done
  [ "$bad" = 0 ] || { echo "format.sh: run tools/format.sh to apply .clang-format" >&2; exit 1; }
else
  "$fmt" -i "${files[@]}"
fi
