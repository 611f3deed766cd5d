#!/bin/bash
# Two makemore binaries benchmarked at the same time, one on each of two cores, then again with
# the cores swapped: on a guest whose speed drifts by 10% from one minute to the next, both see
# the same minutes, and each core's two rows compare the binaries on that core.
#
#   bench/bench_pair.sh OLD_BINARY NEW_BINARY [ROUNDS] [-- BENCH ARGS]
#
# Default bench arguments: the d50 cells of `study depth --full` (no norm, BatchNorm, LayerNorm,
# LayerNorm with residual blocks), `--seconds 1 --repeat 2`. Prints each run's steps/s for both
# binaries and the ratio new / old, then per round the geometric mean of the two runs' ratios,
# in which a core that is faster than the other (interrupts, a neighbour) cancels out:
# sqrt(new@1 / old@0 * new@0 / old@1) = the mean of the same-core ratios.
# Example: bench/bench_pair.sh /tmp/old/build/makemore build/makemore 3
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
[ $# -ge 2 ] || { echo "usage: $0 OLD_BINARY NEW_BINARY [ROUNDS] [-- BENCH ARGS]" >&2; exit 2; }
old=$(realpath "$1") new=$(realpath "$2")
shift 2
rounds=3
if [ $# -gt 0 ] && [ "$1" != "--" ]; then rounds=$1; shift; fi
[ $# -gt 0 ] && [ "$1" = "--" ] && shift
args=("$@")
if [ ${#args[@]} -eq 0 ]; then
  for c in none batch layer layer-res; do args+=(--config "$here/bench/configs/depth-cell-d50-$c.json"); done
  args+=(--seconds 1 --repeat 2 --steps 100000 -i "$here/data/names.txt")
fi
for b in "$old" "$new"; do [ -x "$b" ] || { echo "$b: not an executable; build it first" >&2; exit 2; }; done
command -v taskset > /dev/null || { echo "taskset (util-linux) is needed to pin the two runs" >&2; exit 2; }
[ "$(nproc)" -ge 2 ] || { echo "needs two cores: this machine has $(nproc)" >&2; exit 2; }
out=$(mktemp -d /tmp/bench-pair.XXXXXX)

# network name and steps/s, one per line, from a bench run's table
rows() { awk '$2 ~ /^[0-9]+$/ && $3 ~ /^[0-9]+$/ {print $1, $3}' "$1"; }

for r in $(seq 1 "$rounds"); do
  for swap in 0 1; do
    c_old=$swap c_new=$((1 - swap))
    taskset -c "$c_old" "$old" bench "${args[@]}" > "$out/old.$r.$swap" 2>&1 &
    taskset -c "$c_new" "$new" bench "${args[@]}" > "$out/new.$r.$swap" 2>&1
    wait
    echo "round $r: old on core $c_old, new on core $c_new ($(date -u +%H:%M:%S) UTC)"
    join <(rows "$out/old.$r.$swap" | sort) <(rows "$out/new.$r.$swap" | sort) | tee "$out/ratios.$r.$swap" |
      awk '{printf "  %-28s old %8d  new %8d  new/old %.3f\n", $1, $2, $3, $3 / $2}'
  done
  echo "round $r, both placements: new / old"
  join "$out/ratios.$r.0" "$out/ratios.$r.1" | awk '{printf "  %-28s %.3f\n", $1, sqrt($3 / $2 * $5 / $4)}'
done
echo "bench outputs under $out"
