#!/bin/bash
# One binary's `bench` with --threads 1 and --threads 2, short runs taking turns, so that the
# guest's drifting speed (10-25% from one minute to the next) falls on both about equally; each
# round's ratio compares two neighbouring runs, and the median of the rounds is the summary.
#
#   bench/threads_pair.sh BINARY [ROUNDS] [-- BENCH ARGS]
#
# Default bench arguments: `--preset big-mlp --seconds 2 --repeat 1`. Prints each round's
# steps/s on one and two threads and their ratio, then the median ratio per network.
# Example: bench/threads_pair.sh build/makemore 8
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
[ $# -ge 1 ] || { echo "usage: $0 BINARY [ROUNDS] [-- BENCH ARGS]" >&2; exit 2; }
bin=$(realpath "$1")
shift
rounds=6
if [ $# -gt 0 ] && [ "$1" != "--" ]; then rounds=$1; shift; fi
[ $# -gt 0 ] && [ "$1" = "--" ] && shift
args=("$@")
[ ${#args[@]} -gt 0 ] || args=(--preset big-mlp --seconds 2 --repeat 1 -i "$here/data/names.txt")
[ -x "$bin" ] || { echo "$bin: not an executable; build it first" >&2; exit 2; }
[ "$(nproc)" -ge 2 ] || { echo "needs two cores: this machine has $(nproc)" >&2; exit 2; }
out=$(mktemp -d /tmp/threads-pair.XXXXXX)

# network name and steps/s, one per line, from a bench run's table
rows() { awk '$2 ~ /^[0-9]+$/ && $3 ~ /^[0-9]+$/ {print $1, $3}' "$1"; }

for r in $(seq 1 "$rounds"); do
  # odd rounds start with one thread, even rounds with two
  order="1 2"
  [ $((r % 2)) -eq 0 ] && order="2 1"
  for t in $order; do "$bin" bench --threads "$t" "${args[@]}" > "$out/t$t.$r" 2>&1; done
  echo "round $r ($(date -u +%H:%M:%S) UTC):"
  join <(rows "$out/t1.$r" | sort) <(rows "$out/t2.$r" | sort) | tee "$out/ratios.$r" |
    awk '{printf "  %-28s 1 thread %8d  2 threads %8d  ratio %.3f\n", $1, $2, $3, $3 / $2}'
done
echo "median ratio over $rounds rounds:"
cat "$out"/ratios.* | awk '{print $1, $3 / $2}' | sort -k1,1 -k2,2g |
  awk '{r[$1] = r[$1] " " $2; n[$1]++} END {for (k in r) {split(substr(r[k], 2), v, " "); m = n[k];
    med = (m % 2) ? v[(m + 1) / 2] : (v[m / 2] + v[m / 2 + 1]) / 2; printf "  %-28s %.3f\n", k, med}}'
echo "bench outputs under $out"
