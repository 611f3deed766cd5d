#!/usr/bin/env bash
# What the validation curve (`train --eval-every`) costs a lecture run (docs/cli.md):
#   tools/eval_every_cost.sh [ROUNDS] [EVERY]    (default 3 rounds, --eval-every 20000)
# Each round trains lecture-batchnorm's 200,000 steps on data/names.txt twice, with --eval-every
# EVERY and with 0, taking turns (a slow minute of a shared machine hits both). Two measures:
# the direct one, result.json's val_curve_seconds (the time the evaluations took inside the
# loop) over the loop's other time, which drift cannot blur; and the loops' wall times side by
# side (medians), which it can. The losses and the log are the same bits either way (checked).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
rounds=${1:-3}
every=${2:-20000}
bin="$here/build/makemore"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
run() {  # run NAME EVERY: one training, its result.json on stdout
  "$bin" train --preset lecture-batchnorm -i "$here/data/names.txt" -o "$tmp/$1" --eval-every "$2" --no-report --json \
    2>"$tmp/$1.log"
}
for r in $(seq "$rounds"); do
  run on "$every" >"$tmp/on.$r.json"
  run off 0 >"$tmp/off.$r.json"
  grep -v "val_loss" "$tmp/on/metrics.jsonl" | cmp -s - "$tmp/off/metrics.jsonl" ||
    { echo "eval_every_cost: the loss log differs with --eval-every $every" >&2; exit 1; }
done
python3 - "$tmp" "$rounds" "$every" <<'PY'
import json, statistics, sys
tmp, rounds, every = sys.argv[1], int(sys.argv[2]), sys.argv[3]
on = [json.load(open(f"{tmp}/on.{r}.json")) for r in range(1, rounds + 1)]
off = [json.load(open(f"{tmp}/off.{r}.json")) for r in range(1, rounds + 1)]
for a, b in zip(on, off):
    assert (a["train_loss"], a["val_loss"]) == (b["train_loss"], b["val_loss"]), "final losses differ"
evals = sum(1 for l in open(f"{tmp}/on/metrics.jsonl") if "val_loss" in l)
direct = [a["val_curve_seconds"] / (a["seconds"] - a["val_curve_seconds"]) for a in on]
per_eval = [1e3 * a["val_curve_seconds"] / evals for a in on]
print(f"lecture-batchnorm, 200000 steps, --eval-every {every}: {evals} evaluations of the validation split "
      f"({on[0]['examples']['val']} examples), {rounds} rounds")
print(f"  direct: {statistics.median(per_eval):.1f} ms per evaluation, {100 * statistics.median(direct):.2f}% of the "
      f"loop's other time (rounds: {', '.join(f'{100 * d:.2f}%' for d in direct)})")
s_on = statistics.median(a["seconds"] for a in on)
s_off = statistics.median(b["seconds"] for b in off)
print(f"  wall: loop {s_on:.2f} s with, {s_off:.2f} s without (medians; {100 * (s_on / s_off - 1):+.1f}%, drift included)")
print(f"  final losses identical: train {on[0]['train_loss']:.4f} / val {on[0]['val_loss']:.4f}")
PY
