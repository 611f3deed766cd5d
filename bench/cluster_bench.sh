#!/usr/bin/env bash
# The numbers of docs/cluster.md: a benchmark, not a test. Needs a build with MPI
# (-DMM_WITH_MPI=ON) and mpirun (openmpi-bin).
#   1. scaling: a 200-cell sweep under mpirun -np 1 (-j 1) and -np 2;
#   2. the coordinator's cost: 2,000 tiny cells of 10 steps under -np 32 --oversubscribe, the CPU
#      time rank 0 spends per job handed out and stored (the command prints it);
#   3. the measured per-cell cost of the depth grid at width 256 (depths 2 and 10, 100 steps, SGD,
#      no norm, Kaiming), for the paper estimate of 24,000 such cells at 4,000 steps on 512 cores
#      (docs/cluster.md extrapolates to depths 5, 20 and 50).
# Usage: bench/cluster_bench.sh [BUILD_DIR]   (default build/); writes into a temporary folder.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bin=$(cd "${1:-$here/build}" && pwd)/makemore
words=$here/data/names.txt
[ -f "$words" ] || "$here/scripts/get-data.sh"
work=$(mktemp -d /tmp/mm_cluster_bench_XXXXXX)
trap 'rm -rf "$work"' EXIT
mpi=(mpirun --allow-run-as-root --oversubscribe)
cd "$work"
echo "date: $(date -u +%Y-%m-%dT%H:%MZ); $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg); $("$bin" --version | head -1)"

# 1. Scaling: 20 learning rates x 10 widths of lecture-kaiming, 1,000 steps each.
lrs=$(seq -s, 0.01 0.01 0.20)
grid=(study sweep --preset lecture-kaiming --steps 1000 -i "$words" --grid "train.lr=$lrs"
      --grid "model.layers[0].out=20,40,60,80,100,120,140,160,180,200")
secs() {
  local t0 t1
  t0=$(date +%s.%N)
  "$@" > /dev/null 2> "$work/last.err" || { echo "failed: $*" >&2; tail -3 "$work/last.err" >&2; exit 1; }
  t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc
}
t1=$(secs "${mpi[@]}" -np 1 "$bin" "${grid[@]}" -j 1 -o np1)
t2=$(secs "${mpi[@]}" -np 2 "$bin" "${grid[@]}" -o np2)
echo "scaling, 200 cells: -np 1 (-j 1) ${t1}s, -np 2 ${t2}s, speedup $(echo "scale=2; $t1 / $t2" | bc)x"
cut -d, -f1-11 np1/results.csv > a.csv
cut -d, -f1-11 np2/results.csv > b.csv
cmp -s a.csv b.csv && echo "  results.csv identical apart from timings" || echo "  results.csv DIFFER"

# 2. The coordinator: 2,000 cells of a tiny network, 10 steps each, 32 ranks on this machine.
cat > tiny.json << 'EOF'
{"model": {"n_embd": 4, "layers": [{"type": "linear", "out": 8}, {"type": "tanh"},
  {"type": "linear", "out": "vocab"}]}, "train": {"steps": 10, "batch_size": 8, "lr": 0.1}}
EOF
head -2000 "$words" > words2k.txt
lrs=$(seq -s, 0.001 0.001 0.1)
ts=$(secs "${mpi[@]}" -np 32 "$bin" study sweep --config tiny.json -i words2k.txt --grid "train.lr=$lrs" \
  --grid "model.layers[0].out=4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23" -o np32)
echo "coordinator, 2,000 tiny cells on -np 32 --oversubscribe: ${ts}s in all; $(grep 'rank 0 spent' "$work/last.err")"

# 3. Per-cell cost of the depth grid at width 256: 100 steps at depths 2 and 10.
"$bin" study depth --depths 2,10 --width 256 --steps 100 --inits kaiming --norms none --residual off \
  --optimizers sgd --seeds 1 -j 1 -i "$words" -o depth > /dev/null 2>&1
python3 - "$work/depth/study.json" << 'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
total = 0
for c in sorted(s["cells"], key=lambda c: c["depth"]):
    step = 1 / c["steps_per_sec"]
    fixed = c["seconds"] - 100 * step  # model, init and the final evaluation
    cell = fixed + 4000 * step
    total += cell
    print(f"  depth {c['depth']:2d} width 256: {1e3 * step:.2f} ms/step, {fixed:.1f}s fixed -> {cell:.1f}s per 4,000-step cell")
EOF
