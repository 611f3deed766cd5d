// The study runner: a shared job queue drained by worker threads, each training on its own
// model and generator over the shared, read-only splits.
#include "makemore/study.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <exception>
#include <mutex>
#include <thread>

#include "makemore/model.h"

namespace mm {

namespace {
class BucketMeans : public Observer {
 public:
  void after_forward(Trainer&, int64_t step, float loss) override {
    if (step % 10000 == 0) log.push_back(loss);
    sum_ += loss;
    if (++n_ == 1000) flush();
  }
  void on_end(Trainer&) override {
    if (n_) flush();
  }
  std::vector<float> buckets;
  std::vector<float> log;  // the lecture's printed loss, every 10k steps

 private:
  void flush() {
    buckets.push_back(static_cast<float>(sum_ / n_));
    sum_ = 0;
    n_ = 0;
  }
  double sum_ = 0;
  int n_ = 0;
};
}  // namespace

void parallel_for(std::size_t n, int threads, const std::function<void(std::size_t)>& work) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  std::atomic<std::size_t> next{0};
  std::mutex mu;
  std::exception_ptr error;
  auto worker = [&] {
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
  std::vector<std::thread> pool;
  const std::size_t t_count = std::min<std::size_t>(static_cast<std::size_t>(threads), n);
  for (std::size_t t = 0; t < t_count; ++t) pool.emplace_back(worker);
  for (auto& t : pool) t.join();
  if (error) std::rethrow_exception(error);
}

std::vector<StudyResult> run_study(const std::vector<StudyJob>& jobs, const Splits& splits, int vocab_size,
                                   int threads, const std::function<void(int, int)>& progress) {
  std::vector<StudyResult> results(jobs.size());
  std::mutex mu;
  int done = 0;
  parallel_for(jobs.size(), threads, [&](std::size_t i) {
    const StudyJob& job = jobs[i];
    Model model(job.config, vocab_size);
    BucketMeans buckets;
    StudyResult r;
    r.label = job.label;
    r.seed_index = job.seed_index;
    r.seed = job.config.seed;
    r.outcome = train_and_evaluate(model, job.config, splits, {&buckets});
    r.loss_buckets = std::move(buckets.buckets);
    r.loss_log = std::move(buckets.log);
    std::lock_guard<std::mutex> lock(mu);
    results[i] = std::move(r);
    ++done;
    if (progress) progress(done, static_cast<int>(jobs.size()));
  });
  return results;
}

MeanStd mean_std(const std::vector<double>& v) {
  MeanStd m;
  m.n = static_cast<int>(v.size());
  if (v.empty()) return m;
  double s = 0;
  for (double x : v) s += x;
  m.mean = s / static_cast<double>(v.size());
  if (v.size() > 1) {
    double ss = 0;
    for (double x : v) ss += (x - m.mean) * (x - m.mean);
    m.std = std::sqrt(ss / static_cast<double>(v.size() - 1));
  }
  return m;
}

}  // namespace mm
