#!/bin/bash
# Two makemore binaries side by side on one study: they take turns (A, B, then B, A, ...) so both
# see the same machine in the same minutes, and every cell's results are compared between them.
#
#   bench/study_ab.sh OLD_BINARY NEW_BINARY [ROUNDS] [-- STUDY ARGS]
#
# Default study: `study depth --full -j 2 -i data/names.txt` (480 cells). Prints each run's wall
# time, the ratio per round and over all rounds, and how many cells' results (train / val /
# initial loss, status, steps, divergence step) differ between the binaries and between rounds of
# one binary.
# Example (issue 18's comparison, the baseline binary built from commit cb98bfb in a worktree):
#   git worktree add /tmp/old cb98bfb && cmake -S /tmp/old -B /tmp/old/build -DCMAKE_BUILD_TYPE=Release \
#     && cmake --build /tmp/old/build --target makemore
#   bench/study_ab.sh /tmp/old/build/makemore build/makemore 2
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
[ $# -ge 2 ] || { echo "usage: $0 OLD_BINARY NEW_BINARY [ROUNDS] [-- STUDY ARGS]" >&2; exit 2; }
old=$(realpath "$1") new=$(realpath "$2")
shift 2
rounds=2
if [ $# -gt 0 ] && [ "$1" != "--" ]; then rounds=$1; shift; fi
[ $# -gt 0 ] && [ "$1" = "--" ] && shift
args=("$@")
[ ${#args[@]} -gt 0 ] || args=(depth --full -j 2 -i "$here/data/names.txt")
for b in "$old" "$new"; do [ -x "$b" ] || { echo "$b: not an executable; build it first" >&2; exit 2; }; done
out=$(mktemp -d /tmp/study-ab.XXXXXX)
echo "study ${args[*]}; results under $out"
for r in $(seq 1 "$rounds"); do
  order="old new"
  [ $((r % 2)) = 0 ] && order="new old"  # ABBA: a machine drifting over the rounds slows both alike
  for tag in $order; do
    bin=$old
    [ $tag = new ] && bin=$new
    start=$(date +%s.%N)
    "$bin" study "${args[@]}" -o "$out/$tag-$r" > "$out/$tag-$r.log" 2>&1 || { echo "$tag round $r failed: $out/$tag-$r.log" >&2; exit 1; }
    end=$(date +%s.%N)
    python3 -c "print('round $r $tag: %.1f s (started %s UTC)' % ($end - $start, '$(date -u -d @"${start%.*}" +%H:%M:%S)'))" | tee -a "$out/times.txt"
  done
done
python3 - "$out" "$rounds" <<'EOF'
import json, re, sys
out, rounds = sys.argv[1], int(sys.argv[2])
keys = ('train_loss', 'val_loss', 'initial_loss', 'status', 'steps_done', 'diverged_step')
cells = lambda tag, r: {c['key']: c for c in json.load(open(f'{out}/{tag}-{r}/study.json'))['cells']}
def differing(a, b):
    return sorted(k for k in a if any(a[k].get(f) != b.get(k, {}).get(f) for f in keys))
times = {}
for line in open(f'{out}/times.txt'):
    m = re.match(r'round (\d+) (old|new): ([\d.]+) s', line)
    times[(int(m.group(1)), m.group(2))] = float(m.group(3))
for r in range(1, rounds + 1):
    print(f'round {r}: old / new = {times[(r, "old")] / times[(r, "new")]:.2f}x')
if rounds > 1:
    total = lambda tag: sum(times[(r, tag)] for r in range(1, rounds + 1))
    print(f'all rounds: old {total("old"):.1f} s, new {total("new"):.1f} s, old / new = {total("old") / total("new"):.2f}x')
old1, new1 = cells('old', 1), cells('new', 1)
d = differing(new1, old1)
print(f'cells whose results differ between the binaries: {len(d)} of {len(new1)}' + (': ' + ', '.join(d) if d else ''))
for tag in ('old', 'new'):
    for r in range(2, rounds + 1):
        print(f'{tag} round {r} vs round 1: {len(differing(cells(tag, r), cells(tag, 1)))} cells differ')
EOF
