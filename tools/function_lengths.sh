#!/usr/bin/env bash
# Lists the longest functions of the library and the CLI (lines from signature to closing
# brace, as universal-ctags sees them): the house rule is that a function outside the
# numerical kernels stays under ~80 lines. Needs universal-ctags (Debian: universal-ctags).
# Usage: tools/function_lengths.sh [N] [paths...]   (default: 25 longest in src/ and apps/)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-25}
shift || true
paths=("$@")
[ ${#paths[@]} -gt 0 ] || paths=(src apps)
command -v ctags >/dev/null || { echo "function_lengths: needs universal-ctags (apt-get install universal-ctags)" >&2; exit 1; }
find "${paths[@]}" -name '*.cpp' -o -name '*.h' | sort |
  xargs ctags --fields=+ne --c++-kinds=f -o - |
  awk -F'\t' '{ln=""; en=""; for (i = 4; i <= NF; i++) { if ($i ~ /^line:/) ln = substr($i, 6); if ($i ~ /^end:/) en = substr($i, 5) }
               if (ln != "" && en != "") printf "%5d  %s:%s  %s\n", en - ln + 1, $2, ln, $1 }' |
  sort -rn | head -n "$n"
