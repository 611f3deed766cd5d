// The run folder and its one owner, `Run`: everything a training leaves behind, so eval /
// sample / inspect / report work from it alone, and every rule about it (when a folder may be
// replaced, how a run continues, what is saved when, what result.json holds) in one place that
// any front end (the CLI, a Python module, a cluster runner) calls. docs/run-folder.md lists the
// files, their schemas and the lifecycle. Writing a file is atomic_file.h's; the training step
// is train.h's; drawing the report is report.h's.
#pragma once
#include <atomic>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "makemore/atomic_file.h"
#include "makemore/config.h"
#include "makemore/data.h"
#include "makemore/folder_lock.h"
#include "makemore/metrics.h"
#include "makemore/model.h"
#include "makemore/sample.h"
#include "makemore/train.h"

namespace mm {

inline constexpr const char* kCheckpointFile = "model.safetensors";        // parameters, config, vocabulary
inline constexpr const char* kConfigFile = "config.json";                  // the resolved config
inline constexpr const char* kWordsFile = "words.txt";                     // the word list trained on
inline constexpr const char* kMetricsFile = "metrics.jsonl";               // {"step", "loss", "lr"} per step
inline constexpr const char* kResultFile = "result.json";                  // written once, when the run ends
inline constexpr const char* kTrainStateFile = "train_state.safetensors";  // what `train --resume` needs
// and kLockFile (folder_lock.h), flock'd by the process writing the folder

// words_fp: words_fingerprint() of the word list trained on (metadata "words_fnv1a64"), so that
// a run folder whose words.txt was replaced is refused instead of evaluated on other splits.
void save_checkpoint(const std::string& path, const Model& model, const Config& cfg, const Vocab& vocab, int64_t step,
                     const std::string& words_fp = "");

struct LoadedRun {
  Config config;
  Vocab vocab;
  std::unique_ptr<Model> model;
  int64_t step = 0;
  std::string words_fp;  // empty in checkpoints written before it was recorded
};
// Loads DIR/model.safetensors; checks every tensor's name and shape against the config.
LoadedRun load_run(const std::string& dir);
// DIR/words.txt, the word list the run was trained on, checked against the run's vocabulary and
// fingerprint; its vocabulary is the checkpoint's.
Dataset load_run_dataset(const std::string& dir, const LoadedRun& run);

nlohmann::json read_json_file(const std::string& path);

// How a training records itself and what it says along the way.
struct RunSettings {
  int64_t diag_every = -1;  // diagnostics every N steps, 0 off; -1: a resumed run's own, else 1000
  int64_t save_every = -1;  // checkpoint + train state every N steps, 0 only at the end; -1: likewise, 10000
  int threads = 1;          // recorded in result.json (set_threads() is the caller's)
  bool report = true;       // draw report.html when the run completes
  // A notice for the user (a warmup longer than the run, a cut loss log); null: dropped.
  std::function<void(const std::string&)> note;
  // The validation loss (whole split, eval mode) into metrics.jsonl at step 0, every N steps and
  // at the last step, 0 off; -1: a resumed run's own, else kDefaultEvalEvery.
  int64_t eval_every = -1;
};
// --eval-every's default: 11 points on a lecture run's curve at under 3% of its time (measured
// by tools/eval_every_cost.sh: docs/cli.md).
inline constexpr int64_t kDefaultEvalEvery = 20000;

// What a front end hands a training while it runs.
struct TrainHooks {
  const std::atomic<bool>* stop = nullptr;  // polled between steps: raised, the run saves and ends
  std::vector<Observer*> observers;         // a progress line, a Python callback: after the loss log
  // Called once result.json is written (the run is safe on disk), before the report: the CLI
  // restores its signal handlers here, so a Ctrl-C during the report ends the process at once.
  std::function<void()> on_saved;
};

// What a training call did; `json` is exactly what result.json holds (docs/run-folder.md).
struct RunResult {
  TrainStats stats;
  SplitLosses losses;
  double eval_seconds = 0;
  double val_curve_seconds = 0;  // of `stats.seconds`, spent on the validation curve (eval_every)
  int64_t resumed_from = 0;      // steps done before this call (0: a new run)
  bool stopped_late = false;     // the stop flag rose after the last step: complete and saved, no report
  nlohmann::json json;           // result.json as written; null when a divergence left nothing to describe
  std::string report_path;       // report.html, when drawn
  std::string report_error;      // why it was not drawn (the run itself is complete and saved)
  std::string divergence;        // diverged: one line saying where, what is kept, and the fix
};

class Run;
struct Diagnosis;  // doctor.h
// The doctor on a saved run: one minibatch of the training split (drawn from the run's seed
// ^ 0x5eed) measured in train mode without an update, the initial loss from the config
// re-initialized. input: a word list in the run's characters (empty: its own words.txt);
// batch_size <= 0: the config's. Afterwards the run's model holds that minibatch's activations
// and gradients (walk_layers() reads them). src/run_inspect.cpp.
Diagnosis inspect_run(Run& run, const std::string& input = "", int batch_size = -1);

// What a front end prints around a training: before it, "NAME | N words, vocabulary V | examples
// train / val / test | P parameters" and what the training will do ("N steps, batch B, seed S ->
// DIR", or where a resumed run continues from, or that a killed run's steps were all done and only
// its end remains); after it, the initial and split losses and the steps taken with their speed,
// as the lecture's notebook reports them (lines ending in a newline).
std::string describe_data(Run& run);
std::string describe_start(const Run& run);
std::string describe_result(const Run& run, const RunResult& r);
// A stopped training's last word (empty when it ran to its end): stopped by a signal part way,
// what is saved and how it continues; stopped after its end, that it is complete.
std::string describe_stop(const Run& run, const RunResult& r);

class Run {
 public:
  // A new run of `cfg` on `data` in `dir`. The network is built first (a config whose layers
  // do not fit is an mm::Error naming `config_source`); then the folder is created and locked.
  // A folder holding a run that did not finish (stopped or killed: `resume` continues it) is
  // refused unless `overwrite`; a finished or diverged one is replaced. Nothing is trained yet.
  static Run create(const std::string& dir, const Config& cfg, const Dataset& data, const std::string& config_source,
                    bool overwrite, RunSettings settings = {});
  // The run in `dir`, continued with its own config and words: to `steps` steps in all (-1: its
  // own). A run whose steps are all done but whose result.json is missing (killed in its final
  // evaluation) is finished: train() evaluates and reports without training.
  static Run resume(const std::string& dir, int64_t steps = -1, RunSettings settings = {});
  // A saved run, read-only (no lock): its checkpoint now, words.txt when first asked for.
  static Run open(const std::string& dir);

  Run(Run&&) noexcept;
  Run& operator=(Run&&) noexcept;
  ~Run();

  // Trains (create / resume only), saving every save_every steps; ends finished, interrupted
  // (stop raised: the steps so far saved and evaluated) or diverged (the last good checkpoint
  // evaluated and kept, `divergence` says so). Writes result.json once, then the report.
  RunResult train(const TrainHooks& hooks = {});

  const std::string& dir() const { return dir_; }
  const Config& config() const { return config_; }
  const Vocab& vocab() const { return vocab_; }
  Model& model() { return *model_; }
  int64_t step() const { return step_; }         // steps done: the checkpoint's, or the train state's
  bool finishing() const { return finishing_; }  // resume of a run with all steps done
  bool resumed() const;                          // opened by resume()
  const Dataset& data();
  const Splits& splits();
  std::optional<nlohmann::json> result() const;  // result.json; nullopt when absent
  std::vector<float> losses() const;             // metrics.jsonl, one loss per step
  MetricsColumns metrics() const;                // metrics.jsonl as columns, the validation curve's included
  // The split losses of the model as it is (calibrate: first set BatchNorm statistics from the
  // training split, when it has any).
  SplitLosses evaluate(bool calibrate = false);
  // Words drawn from the model, from a generator seeded `seed` (none: the run's seed + 10, as
  // the lecture samples).
  std::vector<std::u32string> sample(const SampleOptions& opt, std::optional<uint64_t> seed = std::nullopt);

 private:
  Run();
  friend class RunTraining;
  struct Writer;  // what a writing run holds: the lock, its settings, where it resumed
  void record_divergence(RunResult& r);
  [[noreturn]] void not_finite(const std::string& what) const;
  std::string dir_;
  Config config_;
  Vocab vocab_;
  std::unique_ptr<Model> model_;
  int64_t step_ = 0;
  bool finishing_ = false;
  std::string words_fp_;
  std::optional<Dataset> data_;
  std::optional<Splits> splits_;
  std::unique_ptr<Writer> writer_;
};

}  // namespace mm
