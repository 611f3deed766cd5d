// The study engine (study_engine.h): jobs, the store of finished trainings, the pool.
#include "makemore/study_engine.h"

#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <limits>
#include <mutex>
#include <thread>
#include <tuple>

#include "makemore/atomic_file.h"
#include "makemore/diag.h"
#include "makemore/error.h"
#include "makemore/layer_kinds.h"
#include "makemore/model.h"
#include "makemore/parallel.h"
#include "makemore/run.h"

namespace mm::study {

using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {
// Bumped when a record's meaning changes: older files then no longer match any key.
constexpr int kStoreFormat = 1;

// NaN (a diverged run's skipped evaluation) is written as null and read back as NaN.
json number_or_null(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }
double number_or_nan(const json& j) { return j.is_null() ? std::numeric_limits<double>::quiet_NaN() : j.get<double>(); }

class BucketMeans : public Observer {
 public:
  bool watches_backward(int64_t) const override { return false; }
  bool watches_forward(int64_t) const override { return false; }
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

Job make_job(std::string name, Config cfg, uint64_t seed, bool at_init) {
  cfg.seed = seed;
  return Job{std::move(name), std::move(cfg), at_init};
}

json record_to_json(const Record& r) {
  const TrainStats& st = r.outcome.stats;
  return {{"initial_loss", number_or_null(st.initial_loss)},
          {"last_loss", number_or_null(st.last_loss)},
          {"steps", st.steps},
          {"train_seconds", st.seconds},
          {"steps_per_sec", st.steps_per_sec},
          {"diverged", st.diverged},
          {"diverged_step", st.diverged_step},
          {"train_loss", number_or_null(r.outcome.losses.train)},
          {"val_loss", number_or_null(r.outcome.losses.val)},
          {"test_loss", number_or_null(r.outcome.losses.test)},
          {"eval_seconds", r.outcome.eval_seconds},
          {"loss_buckets", r.loss_buckets},
          {"loss_bucket", r.loss_bucket},
          {"loss_log", r.loss_log},
          {"at_init", r.at_init},
          {"seconds", r.seconds}};
}

Record record_from_json(const json& j) {
  Record r;
  TrainStats& st = r.outcome.stats;
  st.initial_loss = static_cast<float>(number_or_nan(j.at("initial_loss")));
  st.last_loss = static_cast<float>(number_or_nan(j.at("last_loss")));
  st.steps = j.at("steps").get<int64_t>();
  st.seconds = j.at("train_seconds").get<double>();
  st.steps_per_sec = j.at("steps_per_sec").get<double>();
  st.diverged = j.at("diverged").get<bool>();
  st.diverged_step = j.at("diverged_step").get<int64_t>();
  r.outcome.losses = {number_or_nan(j.at("train_loss")), number_or_nan(j.at("val_loss")), number_or_nan(j.at("test_loss"))};
  r.outcome.eval_seconds = j.at("eval_seconds").get<double>();
  r.loss_buckets = j.at("loss_buckets").get<std::vector<float>>();
  r.loss_bucket = j.at("loss_bucket").get<int>();
  r.loss_log = j.at("loss_log").get<std::vector<float>>();
  r.at_init = j.at("at_init");
  r.seconds = j.at("seconds").get<double>();
  return r;
}

json init_summary(const Snapshot& s) {
  json blocks = json::array();
  for (const LayerDiag& d : s.layers) {
    if (!d.bounded() && !(d.kind && d.kind->is(LayerRole::Block))) continue;
    blocks.push_back({{"layer", d.index},
                      {"type", d.type},
                      {"act_mean", number_or_null(d.out.mean)},
                      {"act_std", number_or_null(d.out.std)},
                      // |t| > 0.97 means saturated only for a bounded activation: a residual block's x + f(x) is not.
                      {"saturated_pct", d.bounded() ? number_or_null(d.saturated_pct) : json(nullptr)},
                      {"grad_std", d.has_grad ? number_or_null(d.grad.std) : json(nullptr)}});
  }
  std::vector<const ParamDiag*> weights;
  for (const auto& p : s.params)
    if (!p.is_1d && p.name.rfind("layers.", 0) == 0 && p.name.size() > 7 && p.name.ends_with(".weight")) weights.push_back(&p);
  json w = json::array();
  for (std::size_t k = 0; k < weights.size(); ++k)
    w.push_back({{"name", weights[k]->name},
                 {"grad_data", number_or_null(weights[k]->grad_data_ratio)},
                 {"grad_std", number_or_null(weights[k]->grad.std)},
                 {"output_layer", k + 1 == weights.size()}});
  return {{"loss", number_or_null(s.loss)}, {"blocks", blocks}, {"weights", w}};
}

json job_key(const Job& job, const std::string& words_fingerprint) {
  json cfg = job.config.to_json();
  cfg.erase("name");
  cfg.erase("description");
  return {{"config", cfg}, {"words_fnv1a", words_fingerprint}, {"at_init", job.at_init}, {"format", kStoreFormat}};
}

std::string key_file(const json& key) {
  uint64_t h = 14695981039346656037ULL;  // FNV-1a over the canonical text (object keys sorted)
  for (unsigned char c : key.dump()) h = (h ^ c) * 1099511628211ULL;
  return fmt::format("{:016x}.json", h);
}

// ---- the store ------------------------------------------------------------------------------

Store Store::open(const std::string& dir, bool shared) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir, ec))
    throw Error(fmt::format("{}: cannot create the study folder ({}); pass a writable -o DIR", dir,
                            ec ? ec.message() : "a file is in the way"));
  Store s;
  s.dir_ = dir;
  s.lock_ = FolderLock::acquire(dir, "study store", shared);
  if (!shared) remove_temp_files(dir);
  return s;
}

std::optional<Record> Store::find_in(const std::string& dir, const json& key) {
  const std::string path = dir + "/" + key_file(key);
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return std::nullopt;
  try {
    const json kept = read_json_file(path);
    if (kept.at("key") == key) return record_from_json(kept.at("record"));
  } catch (const std::exception&) {
    // torn (a killed writer leaves only its temp file, but be safe) or another version's
  }
  return std::nullopt;
}

void Store::put(const json& key, const std::string& name, const Record& r) const {
  const json kept{{"key", key}, {"name", name}, {"record", record_to_json(r)}};
  write_file_atomic(dir_ + "/" + key_file(key), kept.dump() + "\n");
}

// ---- the pool -------------------------------------------------------------------------------

Record train_job(const Job& job, const Splits& splits, int vocab_size) {
  const auto t0 = std::chrono::steady_clock::now();
  Model model(job.config, vocab_size);
  BucketMeans buckets(loss_bucket_steps(job.config.steps));
  std::vector<Observer*> observers{&buckets};
  DiagOptions d;  // a snapshot at step 0 only, none of the periodic extras
  d.every = 0;
  d.last_step = 0;
  d.ratio_dense_steps = 0;
  d.ratio_every = 0;
  d.sample = 0;
  d.bins = 0;  // init_summary reads moments and saturation, no histogram
  DiagObserver diag(d);
  if (job.at_init) observers.push_back(&diag);
  Record r;
  r.outcome = train_and_evaluate(model, job.config, splits, observers);
  r.loss_buckets = std::move(buckets.buckets);
  r.loss_bucket = loss_bucket_steps(job.config.steps);
  r.loss_log = std::move(buckets.log);
  if (job.at_init && diag.last()) r.at_init = init_summary(*diag.last());
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

double job_cost(const Job& job) {
  const Config& cfg = job.config;
  std::size_t values = 1;
  try {
    values = Model::layout_of(cfg, 27).values;  // the vocabulary barely changes the order
  } catch (const std::exception&) {
  }
  return static_cast<double>(std::max<int64_t>(cfg.steps, 1)) * cfg.batch_size * static_cast<double>(values);
}

std::optional<Record> find_kept(const json& key, const Store& store, const RunOptions& opt) {
  std::optional<Record> kept;
  if (opt.resume) kept = store.find(key);
  for (std::size_t k = 0; opt.resume && !kept && k < opt.also_read_from.size(); ++k)
    kept = Store::find_in(opt.also_read_from[k], key);
  return kept;
}

int count_kept(const std::vector<Job>& jobs, const std::string& words_fingerprint, const Store& store, const RunOptions& opt) {
  int n = 0;
  for (const Job& j : jobs) n += find_kept(job_key(j, words_fingerprint), store, opt) ? 1 : 0;
  return n;
}

std::vector<Finished> run_jobs(const std::vector<Job>& jobs, const Dataset& data, const Store& store, const RunOptions& opt) {
  keep_freed_memory();  // a model built and freed per job
  std::vector<Finished> out(jobs.size());
  std::vector<json> keys;
  std::vector<std::size_t> todo;
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    keys.push_back(job_key(jobs[i], data.fingerprint()));
    std::optional<Record> kept = find_kept(keys[i], store, opt);
    if (!kept) {
      todo.push_back(i);
      continue;
    }
    out[i].record = std::move(*kept);
    out[i].reused = true;
    if (opt.on_finished) opt.on_finished(i, out[i]);
  }
  // Each job's splits: one per (block size, split seed) among the jobs to train.
  // A data section that cannot be split fails its jobs, not the study.
  std::map<std::pair<int, uint64_t>, Splits> splits;
  std::map<std::pair<int, uint64_t>, std::string> split_errors;
  for (std::size_t i : todo) {
    const auto k = std::make_pair(jobs[i].config.block_size, jobs[i].config.split_seed);
    if (splits.count(k) || split_errors.count(k)) continue;
    try {
      splits.emplace(k, data.split_nonempty(k.first, k.second));
    } catch (const std::exception& e) {
      split_errors.emplace(k, e.what());
    }
  }
  std::mutex mu;
  parallel_for_each(todo.size(), opt.threads, [&](std::size_t t) {
    const std::size_t i = todo[t];
    Finished f;
    try {
      const auto k = std::make_pair(jobs[i].config.block_size, jobs[i].config.split_seed);
      if (split_errors.count(k)) throw Error(split_errors.at(k));
      f.record = train_job(jobs[i], splits.at(k), data.vocab().size());
      store.put(keys[i], jobs[i].name, f.record);
    } catch (const std::exception& e) {
      f.error = e.what();
    }
    std::lock_guard<std::mutex> lock(mu);
    out[i] = std::move(f);
    if (opt.on_finished) opt.on_finished(i, out[i]);
  });
  return out;
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

int default_threads(int requested) {
  return requested > 0 ? requested : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

}  // namespace mm::study
