// The study engine: a list of trainings (name, config, seed) in, their finished results out.
// Every study (init, fidelity, depth, sweep) is an analysis on top of it. It owns:
//   - the store: one file per finished training in a study's runs/ folder, keyed by what the
//     result depends on (the config without its name, the word list's fingerprint, the seed,
//     what was recorded), written atomically, so a study stopped at any moment continues where
//     it stopped and another study over the same store reuses what matches; one writing
//     process at a time (a flock'd lock naming its holder's pid);
//   - the pool: the jobs not in the store, trained J at a time on parallel.h's team, each
//     single-threaded and seeded, so a result does not depend on J or on the order.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "makemore/config.h"
#include "makemore/data.h"
#include "makemore/folder_lock.h"
#include "makemore/snapshot.h"
#include "makemore/train.h"

namespace mm::study {

// One training a study asks for.
struct Job {
  std::string name;      // how the study calls it ("lecture-kaiming-seed0"): progress lines, errors
  Config config;         // config.seed is the job's seed
  bool at_init = false;  // also record the network's statistics at step 0 (init_summary)
};
// The job with cfg.seed = seed.
Job make_job(std::string name, Config cfg, uint64_t seed, bool at_init = false);

// The chunk a study's loss curve averages over: 1% of the run, from 1 to 1,000 steps
// (a 300-step run gets 100 points instead of one).
inline int loss_bucket_steps(int64_t steps) { return static_cast<int>(std::clamp<int64_t>(steps / 100, 1, 1000)); }

// What a finished training recorded.
struct Record {
  TrainOutcome outcome;
  std::vector<float> loss_buckets;  // mean loss over each chunk of loss_bucket steps
  int loss_bucket = 1000;           // loss_bucket_steps(steps)
  std::vector<float> loss_log;      // the minibatch loss at steps 0, 10k, 20k, ... (the lecture's log)
  nlohmann::json at_init;           // init_summary() at step 0 when the job asked; null otherwise
  double seconds = 0;               // the whole job: model, training and evaluation
};
// Exactly, both ways (NaN as null). from_json throws nlohmann::json's exceptions on a missing
// or mistyped field.
nlohmann::json record_to_json(const Record& r);
Record record_from_json(const nlohmann::json& j);

// Per hidden block at step 0 (each bounded activation or block of the stack, in order): output
// mean / std, saturation (bounded activations only, else null) and the gradient reaching it;
// per Linear weight below `layers.` its grad std and grad:data; the step's loss.
nlohmann::json init_summary(const Snapshot& s);

// What a result depends on, as canonical JSON: the config without its name and description,
// the word list's fingerprint, what is recorded, and the store's format version.
nlohmann::json job_key(const Job& job, const std::string& words_fingerprint);
// The key's file name in a store: 16 hex digits of its FNV-1a hash, ".json".
std::string key_file(const nlohmann::json& key);

// One study's finished trainings, DIR/KEYHASH.json each holding {key, name, record}.
class Store {
 public:
  // DIR created when missing and locked for writing (a second process is refused, naming the
  // holder's pid); temp files a killed writer left are removed. shared: one of several
  // processes writing disjoint jobs into it at once (the shards of a job array): a shared lock
  // (an exclusive writer is refused, and refuses it), and no temp file is removed (another
  // shard's may be in flight).
  static Store open(const std::string& dir, bool shared = false);
  // A record kept in `dir` for this key; nothing when missing, torn or another key's. No lock:
  // files are replaced atomically, so reading beside a writer is safe.
  static std::optional<Record> find_in(const std::string& dir, const nlohmann::json& key);
  std::optional<Record> find(const nlohmann::json& key) const { return find_in(dir_, key); }
  void put(const nlohmann::json& key, const std::string& name, const Record& r) const;
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  FolderLock lock_;
};

// One job's outcome.
struct Finished {
  Record record;
  bool reused = false;  // found in a store, not trained now
  std::string error;    // its training threw: the message (nothing stored; trained on the next run)
  bool ok() const { return error.empty(); }
};

struct RunOptions {
  int threads = 1;                          // trainings at a time
  std::vector<std::string> also_read_from;  // other stores searched (read-only) after this one
  bool resume = true;                       // false: train every job again
  // After each job is settled, from the thread that settled it, one at a time: first every job
  // found in a store (job order), then each trained job as it finishes.
  std::function<void(std::size_t index, const Finished&)> on_finished;
};

// Trains the jobs not already in `store` (or the other stores) and puts each one into `store`
// as it finishes. Returns one Finished per job, in job order. The splits of each job's
// data.block_size and data.split_seed come from `data`.
std::vector<Finished> run_jobs(const std::vector<Job>& jobs, const Dataset& data, const Store& store, const RunOptions& opt);

// The record kept for this key in `store` or opt.also_read_from (nothing when !opt.resume).
std::optional<Record> find_kept(const nlohmann::json& key, const Store& store, const RunOptions& opt);

// How many of the jobs run_jobs would find in the stores (what a study says before it trains).
int count_kept(const std::vector<Job>& jobs, const std::string& words_fingerprint, const Store& store, const RunOptions& opt);

// What a job costs, about (steps x batch x the network's parameters): a scheduler hands out the
// biggest first.
double job_cost(const Job& job);

// One training, as the pool runs it (for tests and for workers elsewhere).
Record train_job(const Job& job, const Splits& splits, int vocab_size);

struct MeanStd {
  double mean = 0, std = 0;  // std: sample standard deviation (n-1); 0 for one value
  int n = 0;
};
MeanStd mean_std(const std::vector<double>& v);

// threads given as 0: one per core.
int default_threads(int requested);

}  // namespace mm::study
