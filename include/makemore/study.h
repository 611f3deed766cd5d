// Studies: many trainings of one or more configs over seeds, run J at a time (one per core),
// with the results gathered for tables, JSON and figures.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "makemore/config.h"
#include "makemore/data.h"
#include "makemore/train.h"

namespace mm {

struct StudyJob {
  Config config;      // seed and steps already set
  std::string label;  // e.g. the preset name
  int seed_index = 0;
};

// The chunk the loss curve of a study averages over: 1% of the run, from 1 to 1,000 steps
// (a 300-step run gets 100 points instead of one).
inline int loss_bucket_steps(int64_t steps) { return static_cast<int>(std::clamp<int64_t>(steps / 100, 1, 1000)); }

struct StudyResult {
  std::string label;
  int seed_index = 0;
  uint64_t seed = 0;
  TrainOutcome outcome;
  std::vector<float> loss_buckets;  // mean loss over each chunk of loss_bucket steps
  int loss_bucket = 1000;           // loss_bucket_steps(steps): 1,000 for the lecture's 200k
  std::vector<float> loss_log;      // the minibatch loss at steps 0, 10k, 20k, ... (the lecture's log)
};

// A finished training as JSON (its outcome, loss buckets and loss log; the caller adds what
// identifies it) and back, exactly: what `study init` keeps per training so that a rerun
// resumes. from_json throws nlohmann::json's exceptions on a missing or mistyped field.
nlohmann::json study_result_to_json(const StudyResult& r);
StudyResult study_result_from_json(const nlohmann::json& j);

// A study's finished trainings kept one file each, DIR/runs/<label>-seed<k>.json, holding the
// config and the words' fingerprint (words_fingerprint) beside the result, so that a rerun,
// or another command over the same folder, can use them instead of training again.
std::string kept_run_path(const std::string& dir, const StudyJob& job);
void save_kept_run(const std::string& path, const Config& cfg, const std::string& words_hash, const StudyResult& r);
// The kept result when the file holds exactly this config trained on these words; nothing
// when it is missing, torn, or from another config, other words or another version.
std::optional<StudyResult> load_kept_run(const std::string& path, const Config& cfg, const std::string& words_hash);

// Jobs split into those already kept in one of the folders (first match wins; their results
// filled in) and those still to train.
struct StudyPlan {
  std::vector<StudyResult> results;  // one per job, in job order
  std::vector<std::size_t> todo;     // indices of the jobs to train
  int kept() const { return static_cast<int>(results.size() - todo.size()); }
};
StudyPlan plan_study(const std::vector<StudyJob>& jobs, const std::vector<std::string>& kept_in, const std::string& words_hash);
// Trains plan.todo (run_study), filling plan.results and keeping each as it finishes in
// save_to/runs/.
void run_planned_study(StudyPlan& plan, const std::vector<StudyJob>& jobs, const std::string& save_to,
                       const std::string& words_hash, const Splits& splits, int vocab_size, int threads,
                       const std::function<void(int, int)>& progress);

// Calls work(i) for i in [0, n) on `threads` threads (0 = one per core), each index once. The
// first exception thrown stops the handing out of new indices and is rethrown after the
// threads finish; work that must not stop the others catches its own.
void parallel_for(std::size_t n, int threads, const std::function<void(std::size_t)>& work);

// Runs the jobs on `jobs` threads (0 = one per core). After each job finishes, finished(index,
// result) and then progress(done, total) are called from its worker thread under a lock.
std::vector<StudyResult> run_study(const std::vector<StudyJob>& jobs, const Splits& splits, int vocab_size, int threads,
                                   const std::function<void(int, int)>& progress,
                                   const std::function<void(std::size_t, const StudyResult&)>& finished = nullptr);

struct MeanStd {
  double mean = 0, std = 0;  // std: sample standard deviation (n-1); 0 for one value
  int n = 0;
};
MeanStd mean_std(const std::vector<double>& v);

}  // namespace mm
