// The worker team behind parallel_run(): threads created on first use, woken per task batch by
// a generation counter under a mutex, the caller waiting for the last one to finish.
#include "makemore/parallel.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace mm {

namespace {

std::atomic<int> g_threads{1};

class Team {
 public:
  ~Team() {
    {
      std::lock_guard<std::mutex> lk(m_);
      stop_ = true;
      ++generation_;
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
    {
      std::lock_guard<std::mutex> lk(m_);
      task_ = &f;
      tasks_ = n;
      pending_ = n - 1;
      ++generation_;
    }
    cv_.notify_all();
    std::exception_ptr failed;
    try {
      f(0);
    } catch (...) {
      failed = std::current_exception();
    }
    {
      std::unique_lock<std::mutex> lk(m_);
      done_cv_.wait(lk, [&] { return pending_ == 0; });
      task_ = nullptr;
    }
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
      const std::function<void(int)>* task = nullptr;
      {
        std::unique_lock<std::mutex> lk(m_);
        cv_.wait(lk, [&] { return generation_ != seen; });
        seen = generation_;
        if (stop_) return;
        if (id < tasks_) task = task_;
      }
      if (!task) continue;
      (*task)(id);
      std::lock_guard<std::mutex> lk(m_);
      if (--pending_ == 0) done_cv_.notify_one();
    }
  }

  std::atomic<bool> busy_{false};
  std::mutex m_;
  std::condition_variable cv_, done_cv_;
  std::vector<std::thread> workers_;
  const std::function<void(int)>* task_ = nullptr;
  int tasks_ = 0, pending_ = 0;
  unsigned long generation_ = 0;
  bool stop_ = false;
};

Team& team() {
  static Team t;
  return t;
}

}  // namespace

void set_threads(int n) { g_threads = std::max(1, n); }
int threads() { return g_threads.load(std::memory_order_relaxed); }

bool try_parallel_run(int n, const std::function<void(int)>& f) {
  return n > 1 && threads() > 1 && team().run(n, f);
}

void parallel_run(int n, const std::function<void(int)>& f) {
  if (n > 1 && threads() > 1 && team().run(n, f)) return;
  for (int i = 0; i < n; ++i) f(i);
}

}  // namespace mm
