// A small team of worker threads for splitting one piece of work (a large matrix product, an
// evaluation pass) over cores. One team per process; a caller that finds it busy (another
// thread is using it, as in a study running one training per core) runs its work serially.
#pragma once
#include <functional>

namespace mm {

// How many threads one training may use (process-wide, default 1). `--threads` sets it.
void set_threads(int n);
int threads();

// Runs f(0) .. f(n-1), f(0) on the calling thread and the rest on the team when it is free
// and threads() > 1; otherwise all on the caller, in order. Returns when all are done.
// n must not exceed threads().
void parallel_run(int n, const std::function<void(int)>& f);
// The same, but when the team is not available (threads() == 1, or busy) runs nothing and
// returns false, so the caller can do the work its own, undivided way.
bool try_parallel_run(int n, const std::function<void(int)>& f);

}  // namespace mm
