// A small team of worker threads for splitting one piece of work (a large matrix product, an
// evaluation pass) over cores. One team per process; a caller that finds it busy (another
// thread is using it, as in a study running one training per core) runs its work serially.
#pragma once
#include <cstddef>
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

// A pool of jobs on the same team: work(i) for i in [0, n), each index once, handed out in
// order to `workers` threads as they come free (the caller is one of them). The first exception
// stops the handing out and is rethrown when the others finish; work that must not stop the
// others catches its own. A job's own parallel_run finds the team busy and runs serially, so
// each job is single-threaded unless workers is 1 (then the jobs run on the caller, in order,
// and may use the team). The team busy already: the jobs run on the caller, in order.
void parallel_for_each(std::size_t n, int workers, const std::function<void(std::size_t)>& work);

// Has the C library's allocator keep freed memory in the process (glibc: blocks up to 64 MiB from
// its heaps, not mapped one by one, and up to 512 MiB of free memory not returned), for work that
// builds and frees model after model: a study frees each cell's model (a d50 cell's buffers are
// over 10 MB) and would otherwise have the next cell's fault in, page by page, memory the system
// has just zeroed. Process-wide and permanent; a no-op elsewhere than glibc.
void keep_freed_memory();

}  // namespace mm
