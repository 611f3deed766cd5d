// The worker team behind parallel_run(): threads created on first use, woken per task batch by
// a generation counter under a mutex, the caller waiting for the last one to finish.
#include "makemore/parallel.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace mm {

namespace {

std::atomic<int> g_threads{1};

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#else
  std::this_thread::yield();
#endif
}

// The caller waiting for the workers spins this many rounds (about 75 us at the 18.6 ns a pause
// takes on the Zen 5 guest) before sleeping: the pieces of one product end close together.
constexpr int kSpinRounds = 4000;
// A worker waiting for work spins this long before sleeping: a futex wake-up in a VM costs tens
// of microseconds, and one training's parallel work comes in bursts around serial stretches of
// up to a few hundred microseconds (big-mlp's step: its first Linear's token path and a
// BatchNorm, ~90 us, between two products; with ~75 us of spinning the worker slept there and
// every step paid a wake-up, docs/performance.md "Round ten").
constexpr auto kWorkerSpin = std::chrono::milliseconds(1);

class Team {
 public:
  ~Team() {
    stop_.store(true);
    {
      std::lock_guard<std::mutex> lk(m_);
      generation_.fetch_add(1);
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
  }

  // false when another caller holds the team (the work then runs serially).
  bool run(int n, const std::function<void(int)>& f) {
    // An atomic flag rather than a mutex: the caller's own task may call parallel_run again
    // (a product inside a parallel evaluation), which must then simply run serially.
    bool expected = false;
    if (!busy_.compare_exchange_strong(expected, true, std::memory_order_acquire)) return false;
    ensure(n - 1);
    task_ = &f;
    tasks_ = n;
    pending_.store(n - 1, std::memory_order_relaxed);
    {
      std::lock_guard<std::mutex> lk(m_);  // a worker about to sleep sees the new generation
      generation_.fetch_add(1, std::memory_order_release);
    }
    cv_.notify_all();
    std::exception_ptr failed;
    try {
      f(0);
    } catch (...) {
      failed = std::current_exception();
    }
    for (int i = 0; i < kSpinRounds && pending_.load(std::memory_order_acquire) != 0; ++i) cpu_relax();
    if (pending_.load(std::memory_order_acquire) != 0) {
      std::unique_lock<std::mutex> lk(m_);
      done_cv_.wait(lk, [&] { return pending_.load(std::memory_order_acquire) == 0; });
    }
    task_ = nullptr;
    busy_.store(false, std::memory_order_release);
    if (failed) std::rethrow_exception(failed);
    return true;
  }

 private:
  void ensure(int workers) {
    while (static_cast<int>(workers_.size()) < workers) {
      const int id = static_cast<int>(workers_.size()) + 1;
      workers_.emplace_back([this, id] { loop(id); });
    }
  }

  void loop(int id) {
    unsigned long seen = 0;
    for (;;) {
      unsigned long g = generation_.load(std::memory_order_acquire);
      const auto spin_end = std::chrono::steady_clock::now() + kWorkerSpin;
      for (int i = 1; g == seen; ++i) {
        cpu_relax();
        g = generation_.load(std::memory_order_acquire);
        if (i % 256 == 0 && std::chrono::steady_clock::now() >= spin_end) break;
      }
      if (g == seen) {
        std::unique_lock<std::mutex> lk(m_);
        cv_.wait(lk, [&] { return generation_.load(std::memory_order_acquire) != seen; });
        g = generation_.load(std::memory_order_acquire);
      }
      seen = g;
      if (stop_.load()) return;
      const int tasks = tasks_;
      const std::function<void(int)>* task = task_;
      // A worker not needed by generation g may read these while the next run writes them:
      // then the generation has moved on and the next round handles it.
      if (generation_.load(std::memory_order_acquire) != g || id >= tasks || !task) continue;
      (*task)(id);
      if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        std::lock_guard<std::mutex> lk(m_);
        done_cv_.notify_one();
      }
    }
  }

  std::atomic<bool> busy_{false}, stop_{false};
  std::mutex m_;
  std::condition_variable cv_, done_cv_;
  std::vector<std::thread> workers_;
  std::atomic<const std::function<void(int)>*> task_{nullptr};  // written before generation_'s release
  std::atomic<int> tasks_{0};
  std::atomic<int> pending_{0};
  std::atomic<unsigned long> generation_{0};
};

Team& team() {
  static Team t;
  return t;
}

}  // namespace

void set_threads(int n) { g_threads = std::max(1, n); }
int threads() { return g_threads.load(std::memory_order_relaxed); }

bool try_parallel_run(int n, const std::function<void(int)>& f) { return n > 1 && threads() > 1 && team().run(n, f); }

void parallel_for_each(std::size_t n, int workers, const std::function<void(std::size_t)>& work) {
  std::atomic<std::size_t> next{0};
  std::mutex mu;
  std::exception_ptr error;
  auto drain = [&](int) {
    for (;;) {
      const std::size_t i = next++;
      if (i >= n) return;
      try {
        work(i);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu);
        if (!error) error = std::current_exception();
        next = n;
        return;
      }
    }
  };
  const int w = static_cast<int>(std::min<std::size_t>(static_cast<std::size_t>(std::max(1, workers)), n));
  if (w <= 1 || !team().run(w, drain)) drain(0);
  if (error) std::rethrow_exception(error);
}

void parallel_run(int n, const std::function<void(int)>& f) {
  if (n > 1 && threads() > 1 && team().run(n, f)) return;
  for (int i = 0; i < n; ++i) f(i);
}

void keep_freed_memory() {
#if defined(__GLIBC__)
  static std::once_flag once;
  std::call_once(once, [] {
    mallopt(M_MMAP_THRESHOLD, 64 << 20);
    mallopt(M_TRIM_THRESHOLD, 512 << 20);
  });
#endif
}

}  // namespace mm
