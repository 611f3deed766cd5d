// The study runner: a shared job queue drained by worker threads, each training on its own
// model and generator over the shared, read-only splits.
#include "makemore/study.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <exception>
#include <filesystem>
#include <limits>
#include <mutex>
#include <thread>

#include "makemore/model.h"
#include "makemore/run.h"

namespace mm {

namespace {
class BucketMeans : public Observer {
 public:
  explicit BucketMeans(int size) : size_(size) {}
  void after_forward(Trainer&, int64_t step, float loss) override {
    if (step % 10000 == 0) log.push_back(loss);
    sum_ += loss;
    if (++n_ == size_) flush();
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
  int size_;
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

std::vector<StudyResult> run_study(const std::vector<StudyJob>& jobs, const Splits& splits, int vocab_size, int threads,
                                   const std::function<void(int, int)>& progress,
                                   const std::function<void(std::size_t, const StudyResult&)>& finished) {
  std::vector<StudyResult> results(jobs.size());
  std::mutex mu;
  int done = 0;
  parallel_for(jobs.size(), threads, [&](std::size_t i) {
    const StudyJob& job = jobs[i];
    Model model(job.config, vocab_size);
    BucketMeans buckets(loss_bucket_steps(job.config.steps));
    StudyResult r;
    r.label = job.label;
    r.seed_index = job.seed_index;
    r.seed = job.config.seed;
    r.outcome = train_and_evaluate(model, job.config, splits, {&buckets});
    r.loss_buckets = std::move(buckets.buckets);
    r.loss_bucket = loss_bucket_steps(job.config.steps);
    r.loss_log = std::move(buckets.log);
    std::lock_guard<std::mutex> lock(mu);
    results[i] = std::move(r);
    if (finished) finished(i, results[i]);
    ++done;
    if (progress) progress(done, static_cast<int>(jobs.size()));
  });
  return results;
}

namespace {
// NaN (a diverged run's skipped evaluation) is written as null and read back as NaN.
nlohmann::json number_or_null(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }
double number_or_nan(const nlohmann::json& j) { return j.is_null() ? std::numeric_limits<double>::quiet_NaN() : j.get<double>(); }
}  // namespace

nlohmann::json study_result_to_json(const StudyResult& r) {
  const TrainStats& st = r.outcome.stats;
  return {{"label", r.label},
          {"seed_index", r.seed_index},
          {"seed", r.seed},
          {"initial_loss", number_or_null(st.initial_loss)},
          {"last_loss", number_or_null(st.last_loss)},
          {"steps", st.steps},
          {"seconds", st.seconds},
          {"steps_per_sec", st.steps_per_sec},
          {"diverged", st.diverged},
          {"diverged_step", st.diverged_step},
          {"train_loss", number_or_null(r.outcome.losses.train)},
          {"val_loss", number_or_null(r.outcome.losses.val)},
          {"test_loss", number_or_null(r.outcome.losses.test)},
          {"eval_seconds", r.outcome.eval_seconds},
          {"loss_buckets", r.loss_buckets},
          {"loss_bucket", r.loss_bucket},
          {"loss_log", r.loss_log}};
}

StudyResult study_result_from_json(const nlohmann::json& j) {
  StudyResult r;
  r.label = j.at("label").get<std::string>();
  r.seed_index = j.at("seed_index").get<int>();
  r.seed = j.at("seed").get<uint64_t>();
  TrainStats& st = r.outcome.stats;
  st.initial_loss = static_cast<float>(number_or_nan(j.at("initial_loss")));
  st.last_loss = static_cast<float>(number_or_nan(j.at("last_loss")));
  st.steps = j.at("steps").get<int64_t>();
  st.seconds = j.at("seconds").get<double>();
  st.steps_per_sec = j.at("steps_per_sec").get<double>();
  st.diverged = j.at("diverged").get<bool>();
  st.diverged_step = j.at("diverged_step").get<int64_t>();
  r.outcome.losses = {number_or_nan(j.at("train_loss")), number_or_nan(j.at("val_loss")), number_or_nan(j.at("test_loss"))};
  r.outcome.eval_seconds = j.at("eval_seconds").get<double>();
  r.loss_buckets = j.at("loss_buckets").get<std::vector<float>>();
  r.loss_bucket = j.value("loss_bucket", 1000);  // files from before it was recorded: 1,000
  r.loss_log = j.at("loss_log").get<std::vector<float>>();
  return r;
}

std::string kept_run_path(const std::string& dir, const StudyJob& job) {
  return fmt::format("{}/runs/{}-seed{}.json", dir, job.label, job.seed_index);
}

void save_kept_run(const std::string& path, const Config& cfg, const std::string& words_hash, const StudyResult& r) {
  const nlohmann::json kept{{"config", cfg.to_json()}, {"words_fnv1a", words_hash}, {"result", study_result_to_json(r)}};
  write_file_atomic(path, kept.dump() + "\n");
}

std::optional<StudyResult> load_kept_run(const std::string& path, const Config& cfg, const std::string& words_hash) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return std::nullopt;
  try {
    const nlohmann::json kept = read_json_file(path);
    if (kept.at("config") == cfg.to_json() && kept.at("words_fnv1a") == words_hash) {
      StudyResult r = study_result_from_json(kept.at("result"));
      // A curve in other chunks than this version draws (a short run kept by an older one).
      if (r.loss_bucket == loss_bucket_steps(cfg.steps)) return r;
    }
  } catch (const std::exception&) {
    // torn (a killed writer leaves only its .tmp file, but be safe) or another version's
  }
  return std::nullopt;
}

StudyPlan plan_study(const std::vector<StudyJob>& jobs, const std::vector<std::string>& kept_in, const std::string& words_hash) {
  StudyPlan plan;
  plan.results.resize(jobs.size());
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    std::optional<StudyResult> kept;
    for (const auto& dir : kept_in) {
      kept = load_kept_run(kept_run_path(dir, jobs[i]), jobs[i].config, words_hash);
      if (kept) break;
    }
    if (kept)
      plan.results[i] = std::move(*kept);
    else
      plan.todo.push_back(i);
  }
  return plan;
}

void run_planned_study(StudyPlan& plan, const std::vector<StudyJob>& jobs, const std::string& save_to,
                       const std::string& words_hash, const Splits& splits, int vocab_size, int threads,
                       const std::function<void(int, int)>& progress) {
  std::vector<StudyJob> todo;
  for (std::size_t i : plan.todo) todo.push_back(jobs[i]);
  run_study(todo, splits, vocab_size, threads, progress, [&](std::size_t k, const StudyResult& r) {
    const std::size_t i = plan.todo[k];
    plan.results[i] = r;
    save_kept_run(kept_run_path(save_to, jobs[i]), jobs[i].config, words_hash, r);
  });
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
