#!/usr/bin/env bash
# Two makemore binaries' `bench` side by side on this machine, interleaved so that a slow minute
# of a shared machine hits both: ROUNDS rounds, each running A then B (B first in every other
# round), then each binary's best, median and worst steps/s per preset over the rounds, and B / A.
#   tools/bench_ab.sh A B [ROUNDS] [-- bench options]
# Default bench options: the lecture's three networks and wavenet, --steps 10000 --repeat 3.
# Each round's `bench --json` output is kept in $MM_BENCH_AB_DIR (default: a temporary folder).
set -euo pipefail
a=$1 b=$2
rounds=${3:-5}
shift $(($# < 3 ? $# : 3))
[ "${1:-}" = "--" ] && shift
opts=("$@")
[ ${#opts[@]} -gt 0 ] || opts=(--preset lecture-kaiming --preset lecture-batchnorm --preset lecture-deep --preset wavenet
                                --steps 10000 --repeat 3)
out=${MM_BENCH_AB_DIR:-$(mktemp -d)}
mkdir -p "$out"
echo "bench_ab: A = $a ($("$a" --version | tr '\n' ' '))"
echo "bench_ab: B = $b ($("$b" --version | tr '\n' ' '))"
echo "bench_ab: $rounds rounds of: bench ${opts[*]} --json   ($(date -u '+%Y-%m-%d %H:%M UTC'))"
for r in $(seq 1 "$rounds"); do
  order=(a b)
  [ $((r % 2)) = 0 ] && order=(b a)
  for w in "${order[@]}"; do
    bin=$a
    [ "$w" = b ] && bin=$b
    "$bin" bench "${opts[@]}" --json 2>/dev/null >"$out/$w.$r.json"
  done
done
python3 - "$out" "$rounds" <<'PY'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
runs = {w: [json.load(open(f"{out}/{w}.{r}.json")) for r in range(1, rounds + 1)] for w in "ab"}
presets = [row["preset"] for row in runs["a"][0]["results"]]
print(f"{'preset':<26} {'A best':>8} {'A median':>9} {'A worst':>8} {'B best':>8} {'B median':>9} {'B worst':>8} {'B/A med':>8}")
for p in presets:
    v = {w: sorted(row["steps_per_sec"] for run in runs[w] for row in run["results"] if row["preset"] == p) for w in "ab"}
    ma, mb = statistics.median(v["a"]), statistics.median(v["b"])
    print(f"{p:<26} {v['a'][-1]:>8.0f} {ma:>9.0f} {v['a'][0]:>8.0f} {v['b'][-1]:>8.0f} {mb:>9.0f} {v['b'][0]:>8.0f} {mb / ma:>8.3f}")
peaks = {w: [run["peak_gflops"] for run in runs[w]] for w in "ab"}
print("measured FMA peak (GFLOP/s), min-max: A {:.0f}-{:.0f}, B {:.0f}-{:.0f}".format(min(peaks["a"]), max(peaks["a"]), min(peaks["b"]), max(peaks["b"])))
PY
