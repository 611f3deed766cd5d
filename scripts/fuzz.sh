#!/usr/bin/env bash
# Builds the libFuzzer harnesses (fuzz/: clang, ASan + UBSan) into build-fuzz/ and runs each
# for MM_FUZZ_SECONDS seconds (default 30, the CI smoke) on its corpus: fuzz/corpus/NAME's
# seeds plus what earlier runs found (build-fuzz/corpus/NAME). Names select harnesses:
#   scripts/fuzz.sh                                  # all four, 30 s each
#   MM_FUZZ_SECONDS=3600 nice scripts/fuzz.sh        # the long form: an hour each
#   MM_FUZZ_SECONDS=600 scripts/fuzz.sh load_run     # one harness
# Each run's last line (executions, coverage, exec/s) is printed; a crash leaves its input in
# build-fuzz/crash-NAME-* and makes the script fail. An input running longer than
# MM_FUZZ_TIMEOUT seconds (default 20, wall clock) counts as a failure too: raise it on a machine
# so loaded that an input of a fraction of a CPU second can take that long. Needs clang and libFuzzer
# (MM_WITH_FUZZ=1 scripts/setup.sh installs them).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
secs=${MM_FUZZ_SECONDS:-30}
timeout=${MM_FUZZ_TIMEOUT:-20}
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(safetensors load_run config words)
out="$here/build-fuzz"
gen=()
command -v ninja >/dev/null && gen=(-G Ninja)
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
[ -f "$out/CMakeCache.txt" ] || CXX=clang++ cmake -S "$here" -B "$out" "${gen[@]}" "${launcher[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DMM_WITH_FUZZ=ON -DMAKEMORE_BUILD_TESTS=OFF >/dev/null
targets=()
for n in "${names[@]}"; do targets+=("fuzz_$n"); done
cmake --build "$out" -j"$(nproc)" --target "${targets[@]}"

status=0
for n in "${names[@]}"; do
  corpus="$out/corpus/$n"
  mkdir -p "$corpus"
  log="$out/fuzz_$n.log"
  echo "fuzz_$n: ${secs} s"
  # -rss_limit_mb: no input may make the loaders allocate beyond what the file holds.
  seeds=()
  [ -d "$here/fuzz/corpus/$n" ] && seeds=("$here/fuzz/corpus/$n")
  if ! "$out/fuzz_$n" "$corpus" "${seeds[@]}" -max_total_time="$secs" -timeout="$timeout" -rss_limit_mb=2048 \
      -max_len=65536 -print_final_stats=1 -artifact_prefix="$out/crash-$n-" >"$log" 2>&1; then
    echo "fuzz_$n: FAILED (see $log)"
    grep -E "ERROR|SUMMARY|Test unit written" "$log" | head -5
    status=1
  fi
  grep -E "^#[0-9]+.*(DONE|pulse|NEW|REDUCE)" "$log" | tail -1
  grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$log" || true
done
exit $status
