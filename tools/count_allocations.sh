#!/usr/bin/env bash
# Heap allocations per training step of one network: `bench` run for S1 and for S2 steps under
# an LD_PRELOAD malloc counter (compiled here with cc), the difference divided by S2 - S1, so
# that setup and evaluation cancel out. glibc only.
#   tools/count_allocations.sh BINARY [S1 S2] -- bench options (e.g. --preset wavenet -i data/names.txt)
# Example: tools/count_allocations.sh build/makemore 1000 3000 -- --preset wavenet -i data/names.txt
set -euo pipefail
bin=$1
shift
s1=1000 s2=3000
if [ $# -ge 2 ] && [ "$1" != "--" ]; then s1=$1 s2=$2; shift 2; fi
[ "${1:-}" = "--" ] && shift
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cat > "$dir/count.c" <<'C'
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
static unsigned long count;
static void* (*real_malloc)(size_t);
void* malloc(size_t n) {
  if (!real_malloc) real_malloc = (void* (*)(size_t))dlsym(RTLD_NEXT, "malloc");
  __atomic_add_fetch(&count, 1, __ATOMIC_RELAXED);
  return real_malloc(n);
}
__attribute__((destructor)) static void report(void) { fprintf(stderr, "allocations: %lu\n", count); }
C
cc -O2 -shared -fPIC "$dir/count.c" -o "$dir/count.so" -ldl
a=$(LD_PRELOAD="$dir/count.so" "$bin" bench --steps "$s1" --repeat 1 --seconds 0 "$@" 2>&1 | sed -n 's/^allocations: //p')
b=$(LD_PRELOAD="$dir/count.so" "$bin" bench --steps "$s2" --repeat 1 --seconds 0 "$@" 2>&1 | sed -n 's/^allocations: //p')
python3 -c "print('allocations per step: %.2f (%d over %d steps, %d over %d)' % (($b - $a) / ($s2 - $s1), $a, $s1, $b, $s2))"
