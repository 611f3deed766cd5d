#!/usr/bin/env bash
# Crash test: TRIALS trainings (default 10, the CI form; 50 for the long one) each stopped at a
# random moment by SIGKILL, by SIGINT, or by two SIGINTs (the second during the stop-save),
# sent at a uniformly random time, while a save is in flight (a temp file is in the run folder),
# or in the final evaluation (after the loop's last save). After each, the folder must load
# (`eval`, when it holds a checkpoint) and continue (`train --resume`; a new `train` when
# nothing was saved yet) to files bit-identical to a run never interrupted.
#   scripts/crash_test.sh            # 10 trials
#   scripts/crash_test.sh 50         # the long form
# Needs build/makemore (scripts/build.sh) and data/names.txt (scripts/get-data.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${MM_BINARY:-$here/build/makemore}
trials=${1:-10}
seed=${MM_CRASH_SEED:-$$}
RANDOM=$seed
work=$(mktemp -d /tmp/mm_crash.XXXXXX)
trap 'rm -rf "$work"' EXIT
args=(--preset lecture-batchnorm --steps 3000 --save-every 250 --diag-every 500 --no-report -q -i "$here/data/names.txt")
compared=(model.safetensors train_state.safetensors metrics.jsonl diagnostics.jsonl update_ratio.jsonl inspect.json)

# The losses and steps result.json reports (its timings differ from run to run).
losses() { grep -E '^\s*"(initial_loss|train_loss|val_loss|test_loss|steps)":' "$1/result.json"; }

start=$(date +%s%N)
"$bin" train "${args[@]}" -o "$work/ref" >/dev/null
ref_ms=$(( ($(date +%s%N) - start) / 1000000 ))
echo "crash test: $trials trials (seed $seed); an uninterrupted run takes $ref_ms ms"

fail() {
  echo "trial $1 ($2): FAILED: $3"
  exit 1
}

declare -A seen=()
for ((t = 1; t <= trials; t++)); do
  d="$work/t$t"
  signals=(KILL INT INT2)
  moments=(random save final)
  sig=${signals[RANDOM % 3]}
  moment=${moments[RANDOM % 3]}
  what="$sig at $moment"
  "$bin" train "${args[@]}" -o "$d" >/dev/null 2>&1 &
  pid=$!
  case $moment in
    random) sleep "$(printf '0.%03d' $((RANDOM % (ref_ms < 999 ? ref_ms : 999))))"; sleep $((RANDOM % (ref_ms / 1000 + 1))) ;;
    save)  # the first temp file seen after a random number of polls
      skip=$((RANDOM % 4))
      while kill -0 "$pid" 2>/dev/null; do
        tmp=("$d"/*.tmp.*)
        if [[ -e ${tmp[0]} ]]; then ((skip-- > 0)) || break; sleep 0.05; fi
      done ;;
    final)  # inspect.json is written when the loop has ended, before the final evaluation
      while kill -0 "$pid" 2>/dev/null && [[ ! -e $d/inspect.json ]]; do :; done
      sleep "$(printf '0.%03d' $((RANDOM % 200)))" ;;
  esac
  case $sig in
    KILL) kill -KILL "$pid" 2>/dev/null || true ;;
    INT) kill -INT "$pid" 2>/dev/null || true ;;
    INT2)
      kill -INT "$pid" 2>/dev/null || true
      sleep "$(printf '0.%03d' $((RANDOM % 50)))"
      kill -INT "$pid" 2>/dev/null || true ;;
  esac
  wait "$pid" 2>/dev/null || true
  state=finished
  [[ -e $d/result.json ]] || state=killed
  [[ -e $d/result.json ]] && grep -q '"interrupted": true' "$d/result.json" && state=stopped

  if [[ -e $d/model.safetensors ]]; then
    "$bin" eval -o "$d" >/dev/null 2>"$work/err" || fail "$t" "$what" "eval of the folder it left: $(head -1 "$work/err")"
  fi
  if [[ $state != finished ]]; then
    if [[ -e $d/train_state.safetensors ]]; then
      "$bin" train --resume -o "$d" -q --no-report >/dev/null 2>"$work/err" ||
        fail "$t" "$what" "train --resume: $(head -1 "$work/err")"
    else
      "$bin" train "${args[@]}" -o "$d" >/dev/null 2>"$work/err" || fail "$t" "$what" "a new train: $(head -1 "$work/err")"
      state="$state before any save"
    fi
  fi
  for f in "${compared[@]}"; do
    cmp -s "$work/ref/$f" "$d/$f" || fail "$t" "$what" "$f differs from the uninterrupted run's"
  done
  [[ "$(losses "$work/ref")" == "$(losses "$d")" ]] || fail "$t" "$what" "result.json's losses differ"
  ls "$d" | grep -q '\.tmp\.' && fail "$t" "$what" "temp files left in the folder"
  echo "trial $t: $what: $state; continued to the same bits"
  seen["$what"]=1
  rm -rf "$d"
done
echo "crash test: $trials of $trials trials passed (${#seen[@]} kinds of interruption)"
