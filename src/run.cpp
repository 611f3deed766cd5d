// The run folder's owner. Reading: checkpoints with the vocabulary and config in their metadata,
// the word list checked against them. Writing: one process at a time (a flock'd lock file), a
// new run refusing to replace an unfinished one, a resumed run trimming its logs to the state it
// continues from, and one save sequence used periodically and at the end: logs flushed and
// fsync'd, then the train state (the commit point `train --resume` continues from), then the
// checkpoint. So a kill at any moment leaves a folder that `train --resume` continues to the
// same bits, with every log record it needs.
#include "makemore/run.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string_view>

#include "makemore/checkpoint.h"
#include "makemore/diag.h"
#include "makemore/error.h"
#include "makemore/folder_lock.h"
#include "makemore/json_text.h"
#include "makemore/metrics.h"
#include "makemore/perf.h"
#include "makemore/report.h"
#include "makemore/version.h"

namespace mm {

using json = nlohmann::json;
namespace fs = std::filesystem;

json read_json_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(fmt::format("{}: cannot read ({})", path, std::strerror(errno)));
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_json_text(ss.str(), path);
}

void save_checkpoint(const std::string& path, const Model& model, const Config& cfg, const Vocab& vocab, int64_t step,
                     const std::string& words_fp) {
  TensorFile f;
  const auto& ps = model.params();
  for (std::size_t id = 0; id < ps.infos().size(); ++id) {
    const auto& p = ps.info(static_cast<int>(id));
    NamedTensor t;
    t.name = p.name;
    t.shape = p.is_1d ? std::vector<int64_t>{p.cols} : std::vector<int64_t>{p.rows, p.cols};
    const float* d = ps.data(static_cast<int>(id));
    t.data.assign(d, d + p.size());
    f.tensors.push_back(std::move(t));
  }
  f.metadata["format"] = "makemore.cpp/1";
  f.metadata["config"] = cfg.to_json().dump();
  f.metadata["vocab"] = to_utf8(vocab.chars());
  f.metadata["step"] = std::to_string(step);
  f.metadata["makemore_version"] = version_string();
  if (!words_fp.empty()) f.metadata["words_fnv1a64"] = words_fp;
  save_safetensors(path, f);
}

namespace {

Dataset load_words_of(const std::string& dir, const Vocab& vocab, const std::string& words_fp) {
  const std::string path = dir + "/" + kWordsFile;
  struct stat st {};
  if (stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode))
    throw Error(fmt::format(
        "{}: missing from the run folder (the word list it was trained on); retrain it with `makemore train -o {}`", path, dir));
  Dataset data = Dataset::load(path);
  if (data.vocab().chars() != vocab.chars())
    throw Error(fmt::format("{}: does not match the checkpoint's vocabulary; the run folder was modified, retrain it", path));
  if (!words_fp.empty() && data.fingerprint() != words_fp)
    throw Error(
        fmt::format("{}: not the word list this run was trained on (its {} items differ from the ones the checkpoint "
                    "recorded), so its splits would be other examples; restore the file, or retrain with "
                    "`makemore train -i FILE -o {}`",
                    path, data.size(), dir));
  return data;
}

}  // namespace

Dataset load_run_dataset(const std::string& dir, const LoadedRun& run) { return load_words_of(dir, run.vocab, run.words_fp); }

namespace {

// The stored config's parameters against the file's tensors, before a model of the config's
// size is allocated: every tensor the config needs is in the file with its size.
void check_sizes(const std::string& path, const Config& cfg, int vocab_size, const TensorFile& f) {
  Model::Layout layout;
  try {
    layout = Model::layout_of(cfg, vocab_size);
  } catch (const std::invalid_argument& e) {
    throw Error(fmt::format("{} (config metadata): {}", path, text_excerpt(e.what(), 200)));
  }
  for (const ParamInfo& p : layout.params) {
    const NamedTensor* t = f.find(p.name);
    if (!t) throw Error(fmt::format("{}: checkpoint lacks tensor '{}' that its config needs; retrain", path, p.name));
    if (t->data.size() != p.size())
      throw Error(
          fmt::format("{}: tensor '{}' has {} values, its config needs {}; retrain", path, p.name, t->data.size(), p.size()));
  }
}

}  // namespace

LoadedRun load_run(const std::string& dir) {
  struct stat st {};
  if (stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    throw NotFound(fmt::format("{}: no such run folder; train one first with `makemore train -o {}`", dir, dir));
  const std::string path = dir + "/" + kCheckpointFile;
  if (stat(path.c_str(), &st) != 0)
    throw NotFound(
        fmt::format("{}: no checkpoint in this run folder (the run did not get far enough to save one, or the file was removed); "
                    "train again with `makemore train -o {}`",
                    path, dir));
  const TensorFile f = load_own_safetensors(path);
  auto meta = [&](const char* key) -> const std::string& {
    auto it = f.metadata.find(key);
    if (it == f.metadata.end())
      throw Error(fmt::format("{}: not a makemore.cpp checkpoint (no '{}' in its metadata)", path, key));
    return it->second;
  };
  LoadedRun run;
  if (auto it = f.metadata.find("words_fnv1a64"); it != f.metadata.end()) run.words_fp = it->second;
  run.config = parse_config(parse_json_text(meta("config"), path + " (config metadata)"), path + " (config metadata)");
  std::u32string chars;
  if (!from_utf8(meta("vocab"), &chars))
    throw Error(fmt::format("{}: corrupt checkpoint (vocabulary is not UTF-8); retrain", path));
  try {
    run.vocab = Vocab::from_chars(chars);
  } catch (const Error& e) {
    throw Error(fmt::format("{}: metadata 'vocab': {}; restore the file or train again", path, e.what()));
  }
  const auto step = metadata_count(meta("step"), int64_t{1} << 40);
  if (!step)
    throw Error(
        fmt::format("{}: corrupt checkpoint (metadata 'step' is '{}', not a step count)", path, text_excerpt(meta("step"))));
  run.step = *step;
  check_sizes(path, run.config, run.vocab.size(), f);
  run.model = std::make_unique<Model>(run.config, run.vocab.size());
  auto& ps = run.model->params();
  for (std::size_t id = 0; id < ps.infos().size(); ++id) {
    const auto& p = ps.info(static_cast<int>(id));
    const NamedTensor* t = f.find(p.name);
    if (!std::all_of(t->data.begin(), t->data.end(), [](float v) { return std::isfinite(v); }))
      throw Error(
          fmt::format("{}: tensor '{}' holds values that are not finite (the training had diverged when this was "
                      "saved); train again with a lower learning rate",
                      path, p.name));
    std::copy(t->data.begin(), t->data.end(), ps.data(static_cast<int>(id)));
  }
  return run;
}

// ---- the lock ------------------------------------------------------------------------------

namespace {

void note(const RunSettings& s, const std::string& text) {
  if (s.note) s.note(text);
}

void warmup_note(const Config& cfg, const RunSettings& s) {
  if (cfg.lr.warmup > cfg.steps)
    note(s, fmt::format("train.lr.warmup is {} steps, longer than the run's {}: the learning rate only reaches {:.3g} of "
                        "its schedule's",
                        cfg.lr.warmup, cfg.steps, static_cast<double>(cfg.steps) / static_cast<double>(cfg.lr.warmup)));
}

std::unique_ptr<Model> build_model(const Config& cfg, int vocab_size, const std::string& source) {
  try {
    return std::make_unique<Model>(cfg, vocab_size);
  } catch (const std::invalid_argument& e) {
    // Errors that already name their field (a residual branch's width) keep it.
    const bool named = std::string_view(e.what()).starts_with("model.");
    throw Error(fmt::format("{}: {}{}", source, named ? "" : "model.layers: ", e.what()));
  }
}

// Temp files a killed save left behind: only the lock holder removes them (another writer's
// would be in flight).
void remove_leftovers(const std::string& dir) {
  remove_temp_files(dir);
  const std::string figures = dir + "/" + kFiguresDir;
  if (!is_symlink(figures)) remove_temp_files(figures);
}

// A run that did not finish (stopped or killed) is a training's worth of work that `resume`
// continues; a new run must not replace it unless asked to. Finished or diverged (continuing it
// would diverge again): replaced.
void refuse_unfinished(const std::string& dir) {
  if (!fs::is_regular_file(fs::path(dir) / kTrainStateFile)) return;
  std::optional<json> prev;
  try {
    if (fs::is_regular_file(fs::path(dir) / kResultFile)) prev = read_json_file(dir + "/" + kResultFile);
  } catch (const Error&) {
  }
  if (prev && !prev->value("interrupted", false)) return;
  throw Error(
      fmt::format("{}: holds a run that did not finish{}; continue it with `makemore train --resume -o {}`, "
                  "or pass --overwrite to replace it with this new run",
                  dir,
                  prev && prev->contains("steps") && prev->contains("steps_planned")
                      ? fmt::format(" ({} of {} steps)", (*prev)["steps"].dump(), (*prev)["steps_planned"].dump())
                      : std::string(" (stopped or killed)"),
                  dir));
}

// A run killed after its train state but before its first checkpoint has no model.safetensors:
// the network comes from config.json and words.txt (the state then fills in the parameters).
LoadedRun load_run_for_resume(const std::string& dir) {
  if (fs::exists(fs::path(dir) / kCheckpointFile) || !fs::is_regular_file(fs::path(dir) / kConfigFile)) return load_run(dir);
  LoadedRun run;
  const std::string path = dir + "/" + kConfigFile;
  run.config = parse_config(read_json_file(path), path);
  // The checkpoint that records the word list's fingerprint is not written yet (killed between
  // the first train state and the first checkpoint): the words.txt the run wrote is the record.
  const Dataset words = Dataset::load(dir + "/" + kWordsFile);
  run.vocab = words.vocab();
  run.words_fp = words.fingerprint();
  // Sized against the train state before a model of the config's size is allocated.
  const std::string state_path = dir + "/" + kTrainStateFile;
  const TensorFile state = load_own_safetensors(state_path);
  const NamedTensor* values = state.find("model.values");
  std::size_t needed = 0;
  try {
    needed = Model::layout_of(run.config, run.vocab.size()).values;
  } catch (const std::invalid_argument& e) {
    throw Error(fmt::format("{}: model.layers: {}", path, text_excerpt(e.what(), 200)));
  }
  if (!values || values->data.size() != needed)
    throw Error(
        fmt::format("{}: its parameters do not fit the network {} describes; the run cannot be continued, train it "
                    "again from the start",
                    state_path, path));
  run.model = build_model(run.config, run.vocab.size(), path);
  return run;
}

}  // namespace

// ---- a writing run -------------------------------------------------------------------------

struct Run::Writer {
  FolderLock lock;
  RunSettings settings;
  int64_t diag_every = 1000, save_every = 10000, eval_every = kDefaultEvalEvery;
  int64_t resumed_from = 0;
  bool resumed = false;
};

Run::Run() = default;
Run::Run(Run&&) noexcept = default;
Run& Run::operator=(Run&&) noexcept = default;
Run::~Run() = default;

Run Run::create(const std::string& dir, const Config& cfg, const Dataset& data, const std::string& config_source, bool overwrite,
                RunSettings settings) {
  if (const std::string n = data.empty_lines_note(); !n.empty()) note(settings, n);
  warmup_note(cfg, settings);
  Run run;
  run.dir_ = dir;
  run.config_ = cfg;
  run.vocab_ = data.vocab();
  run.words_fp_ = data.fingerprint();
  run.splits_ = data.split_nonempty(cfg.block_size, cfg.split_seed);
  run.data_ = data;
  // Built before the folder is touched: a config whose layers do not fit together (a flatten
  // that does not divide block_size) fails here, naming the config.
  run.model_ = build_model(cfg, run.vocab_.size(), config_source);
  if (cfg.calibrate_batchnorm && !run.model_->has_running_stats())
    note(settings, fmt::format("--calibrate: {} has no BatchNorm layer; nothing to calibrate", config_source));

  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir))
    throw Error(
        fmt::format("{}: cannot create the run folder ({}); pick another -o DIR", dir, ec ? ec.message() : "not a directory"));
  auto w = std::make_unique<Writer>();
  w->lock = FolderLock::acquire(dir, "run folder");
  remove_leftovers(dir);
  if (!overwrite) refuse_unfinished(dir);
  // A previous run's results must not pass for this one's if it fails part way.
  for (const char* stale : {kResultFile, kCheckpointFile, kTrainStateFile}) remove_file(dir + "/" + stale);
  remove_report(dir);  // drawn again at the end
  std::string words;
  for (const auto& word : data.words()) words += to_utf8(word) + "\n";
  write_file_atomic(dir + "/" + kWordsFile, words);
  write_file_atomic(dir + "/" + kConfigFile, cfg.to_json().dump(2) + "\n");
  w->diag_every = settings.diag_every >= 0 ? settings.diag_every : 1000;
  w->save_every = settings.save_every >= 0 ? settings.save_every : 10000;
  w->eval_every = settings.eval_every >= 0 ? settings.eval_every : kDefaultEvalEvery;
  w->settings = std::move(settings);
  run.writer_ = std::move(w);
  return run;
}

namespace {

// What a resume must know of the train state before it touches the folder (the real load, of
// the optimizer and the generator, is the Trainer's).
TrainState probe_state(const std::string& dir, const Config& cfg, Model& model) {
  if (!fs::exists(fs::path(dir) / kTrainStateFile))
    throw Error(fmt::format("{}/{}: missing, so the run cannot be continued exactly; train it again with `makemore train -o {}`",
                            dir, kTrainStateFile, dir));
  Optimizer probe(cfg.optimizer, model.params().values().size());
  TorchGenerator gen;
  // It holds the parameters too: a run killed between writing it and the checkpoint has a newer
  // state than checkpoint, and continues from the state.
  return load_train_state(dir + "/" + kTrainStateFile, probe, gen, model);
}

// The logs hold what the steps before `resume_step` recorded; a run killed after its last save
// may have logged later steps (run again now) and a torn last line.
void trim_logs(const std::string& dir, int64_t resume_step, const RunSettings& s) {
  for (const char* f : {kDiagnosticsFile, kUpdateRatioFile}) keep_records_before(dir + "/" + f, resume_step);
  if (const int64_t losses = keep_records_before(dir + "/" + kMetricsFile, resume_step, "loss"); losses < resume_step)
    note(s, fmt::format("{}/{} holds the losses of {} of the {} steps done (the file was cut or edited); the loss curve and "
                        "the loss log will have a gap there",
                        dir, kMetricsFile, losses, resume_step));
}

}  // namespace

Run Run::resume(const std::string& dir, int64_t steps, RunSettings settings) {
  // Not a run folder: load_run says so (before a lock file is left in someone's folder).
  if (!fs::is_regular_file(fs::path(dir) / kCheckpointFile) && !fs::is_regular_file(fs::path(dir) / kTrainStateFile))
    load_run(dir);
  auto w = std::make_unique<Writer>();
  w->lock = FolderLock::acquire(dir, "run folder");
  remove_leftovers(dir);
  LoadedRun loaded = load_run_for_resume(dir);
  Run run;
  run.dir_ = dir;
  run.config_ = loaded.config;
  run.vocab_ = loaded.vocab;
  run.words_fp_ = loaded.words_fp;
  run.model_ = std::move(loaded.model);
  const TrainState st = probe_state(dir, run.config_, *run.model_);
  run.step_ = st.step;
  if (steps >= 0) run.config_.steps = steps;
  const bool has_result = fs::exists(fs::path(dir) / kResultFile);
  // All steps done but no result.json: killed in its final evaluation. Finished now, not retrained.
  run.finishing_ = st.step == run.config_.steps && !has_result;
  if (st.step >= run.config_.steps && !run.finishing_)
    throw Error(steps >= 0 && steps < st.step
                    ? fmt::format("--steps {}: the run in {} already has {} steps; pass --steps N with N > {} to train it "
                                  "further (N counts all steps, not the new ones)",
                                  steps, dir, st.step, st.step)
                    : fmt::format("{}: the run already has {} of its {} steps; pass --steps N with N > {} to train it further",
                                  dir, st.step, run.config_.steps, st.step));
  run.data_ = load_words_of(dir, run.vocab_, run.words_fp_);
  warmup_note(run.config_, settings);
  run.splits_ = run.data_->split_nonempty(run.config_.block_size, run.config_.split_seed);

  // The checkpoint and train state stay until the continued run replaces them.
  remove_file(dir + "/" + kResultFile);
  remove_report(dir);
  trim_logs(dir, st.step, settings);
  write_file_atomic(dir + "/" + kConfigFile, run.config_.to_json().dump(2) + "\n");
  // A resumed run records as it did unless told otherwise.
  w->diag_every = settings.diag_every >= 0 ? settings.diag_every : st.diag_every >= 0 ? st.diag_every : 1000;
  w->save_every = settings.save_every >= 0 ? settings.save_every : st.save_every >= 0 ? st.save_every : 10000;
  w->eval_every = settings.eval_every >= 0 ? settings.eval_every : st.eval_every >= 0 ? st.eval_every : kDefaultEvalEvery;
  w->resumed = true;
  w->resumed_from = st.step;
  w->settings = std::move(settings);
  run.writer_ = std::move(w);
  return run;
}

Run Run::open(const std::string& dir) {
  LoadedRun loaded = load_run(dir);
  Run run;
  run.dir_ = dir;
  run.config_ = std::move(loaded.config);
  run.vocab_ = loaded.vocab;
  run.words_fp_ = loaded.words_fp;
  run.model_ = std::move(loaded.model);
  run.step_ = loaded.step;
  return run;
}

bool Run::resumed() const { return writer_ && writer_->resumed; }

const Dataset& Run::data() {
  if (!data_) data_ = load_words_of(dir_, vocab_, words_fp_);
  return *data_;
}

const Splits& Run::splits() {
  if (!splits_) splits_ = data().split(config_.block_size, config_.split_seed);
  return *splits_;
}

std::optional<json> Run::result() const {
  if (!fs::exists(fs::path(dir_) / kResultFile)) return std::nullopt;
  return read_json_file(dir_ + "/" + kResultFile);
}

std::vector<float> Run::losses() const { return read_losses(dir_ + "/" + kMetricsFile); }

MetricsColumns Run::metrics() const { return read_metrics(dir_ + "/" + kMetricsFile); }

// Finite weights can still overflow float in a forward pass (a damaged or edited file): no loss
// or sample is reported from such a model.
[[noreturn]] void Run::not_finite(const std::string& what) const {
  throw Error(
      fmt::format("{}/{}: the model of step {} {}; the file was damaged or edited, or its training had diverged: "
                  "restore it or train again",
                  dir_, kCheckpointFile, step_, what));
}

SplitLosses Run::evaluate(bool calibrate) {
  const Splits& s = splits();
  if (calibrate && model_->has_running_stats()) model_->calibrate(s.train);
  const SplitLosses l = evaluate_splits(*model_, s);
  if (!std::isfinite(l.train) || !std::isfinite(l.val) || !std::isfinite(l.test))
    not_finite("gives losses that are not finite (its activations overflow float on the splits)");
  return l;
}

std::vector<std::u32string> Run::sample(const SampleOptions& opt, std::optional<uint64_t> seed) {
  if (opt.count < 1) throw Error(fmt::format("sample: count {} is not a number of words; use 1 or more", opt.count));
  if (!(opt.temperature > 0) || !std::isfinite(opt.temperature))
    throw Error(
        fmt::format("sample: temperature {} is not a positive finite number (1 samples the model as it is)", opt.temperature));
  if (opt.top_k < 0) throw Error(fmt::format("sample: top_k {} is negative; use 0 (all tokens) or a count", opt.top_k));
  if (opt.max_length < 1) throw Error(fmt::format("sample: max_length {} must be at least 1", opt.max_length));
  TorchGenerator gen(seed ? *seed : config_.seed + 10);
  try {
    return sample_words(*model_, vocab_, opt, gen);
  } catch (const std::overflow_error& e) {
    throw Error(fmt::format("sample: temperature {:g} is too small for the model of step {} in {}/{}: {}; use a larger one",
                            opt.temperature, step_, dir_, kCheckpointFile, e.what()));
  } catch (const std::domain_error& e) {
    not_finite(fmt::format("cannot be sampled: {}", e.what()));
  } catch (const std::invalid_argument& e) {  // the generator's check of the probabilities
    not_finite(fmt::format("cannot be sampled ({})", e.what()));
  }
}

// ---- training ------------------------------------------------------------------------------

namespace {

// Every `every` steps (not the last), the run so far onto disk, so that a run killed outright
// (SIGKILL, out of memory, power) can be sampled and continued with --resume.
class PeriodicSave : public Observer {
 public:
  bool watches_backward(int64_t) const override { return false; }
  bool watches_forward(int64_t) const override { return false; }
  PeriodicSave(int64_t every, int64_t total, std::function<void(Trainer&, int64_t)> save)
      : every_(every), total_(total), save_(std::move(save)) {}
  void after_update(Trainer& t, int64_t step, double) override {
    const int64_t done = step + 1;
    if (every_ <= 0 || done % every_ != 0 || done >= total_) return;
    // Parameters whose next loss is not finite are reported as a divergence at the next step;
    // they must not replace the last good checkpoint first.
    if (!std::isfinite(t.probe_next_loss())) return;
    save_(t, done);
  }

 private:
  int64_t every_, total_;
  std::function<void(Trainer&, int64_t)> save_;
};

}  // namespace

// One training call's files: the logs it appends to and the one save sequence.
class RunTraining {
 public:
  RunTraining(Run& run, Run::Writer& w) : run_(run), w_(w), metrics_(run.dir() + "/" + kMetricsFile, w.resumed) {
    if (w.diag_every <= 0) {
      RunDiagnostics::remove_stale(run.dir());
      return;
    }
    DiagOptions dopt;
    dopt.every = w.diag_every;
    dopt.bins = 40;  // a diagnostics.jsonl line stays under ~20 KB
    dopt.last_step = run.config().steps - 1;
    dopt.sample_from = &run.splits().train;
    diag_ = std::make_unique<RunDiagnostics>(run.dir(), dopt, w.resumed);
    if (w.resumed) {
      std::vector<float> earlier = read_losses(run.dir() + "/" + kMetricsFile);
      earlier.resize(std::min(earlier.size(), static_cast<std::size_t>(w.resumed_from)));
      diag_->observer().set_history(std::move(earlier),
                                    read_update_ratios(run.dir() + "/" + kUpdateRatioFile, run.model().params(), w.resumed_from));
    }
  }

  std::vector<Observer*> observers(const std::vector<Observer*>& front_end) {
    std::vector<Observer*> obs{&metrics_};
    obs.insert(obs.end(), front_end.begin(), front_end.end());
    if (diag_) obs.push_back(&diag_->observer());
    obs.push_back(&validation_);
    obs.push_back(&periodic_);  // last: after this step's loss and diagnostics are recorded
    return obs;
  }

  // The periodic save: the logs the state counts on, then the state (what --resume continues
  // from), then the checkpoint.
  void save_progress(Trainer& t, int64_t done) {
    sync_logs();
    save_state(t, done, t.initial_loss());
    save_checkpoint(path(kCheckpointFile), t.model(), run_.config(), run_.vocab(), done, words_fp());
  }

  // The loop ended (finished or stopped): logs, inspect.json, then the state. The checkpoint
  // follows the evaluation (it holds the calibrated statistics); a kill before it is repaired by
  // --resume, which finishes from the state.
  void save_trained(Trainer& t, const TrainStats& st) {
    sync_logs();
    const bool stepped = st.steps > t.first_step();
    if (diag_ && st.steps == 0) {
      // No step ran, so nothing was observed: measure the network as initialized, as `makemore
      // inspect` does (the same config and seed draw the same weights and first minibatch).
      write_file_atomic(path(kInspectFile),
                        diagnosis_json(inspect_training(run_.config(), run_.splits(), run_.vocab().size(), 0)).dump(1) + "\n");
    } else if (diag_ && stepped) {
      diag_->write_inspect(t.model(), run_.config().name, run_.vocab().size());
    }
    if (stepped || !w_.resumed) save_state(t, st.steps, st.initial_loss);
  }

  double val_curve_seconds() const { return validation_.seconds(); }
  std::string path(const char* file) const { return run_.dir() + "/" + file; }
  const std::string& words_fp() const { return run_.words_fp_; }

 private:
  void sync_logs() {
    metrics_.sync();
    if (diag_) diag_->flush();
  }
  void save_state(Trainer& t, int64_t done, float initial_loss) {
    save_train_state(path(kTrainStateFile), t.optimizer(), t.generator(), t.model(),
                     {done, initial_loss, w_.diag_every, w_.save_every, w_.eval_every});
  }

  Run& run_;
  Run::Writer& w_;
  MetricsWriter metrics_;
  std::unique_ptr<RunDiagnostics> diag_;
  ValidationCurve validation_{w_.eval_every, run_.splits().val,
                              [this](int64_t step, double loss) { metrics_.write_val(step, loss); }};
  PeriodicSave periodic_{w_.save_every, run_.config().steps, [this](Trainer& t, int64_t done) { save_progress(t, done); }};
};

namespace {

// result.json: one schema for every way a run ends (docs/run-folder.md). `losses` are those of
// the model in the checkpoint beside it (on divergence: the last good one, of step `steps`).
json result_json(Run& run, const RunResult& r, int64_t steps, int threads) {
  const TrainStats& st = r.stats;
  const bool interrupted = st.interrupted && !st.diverged;
  const auto& sp = run.splits();
  const int V = run.vocab().size();
  return json{{"preset", run.config().name},
              {"input", run.data().source()},
              {"initial_loss", interrupted && st.steps == 0 ? json(nullptr) : json(st.initial_loss)},
              {"expected_initial_loss", std::log(static_cast<double>(V))},
              {"train_loss", r.losses.train},
              {"val_loss", r.losses.val},
              {"test_loss", r.losses.test},
              {"steps", steps},
              {"steps_planned", run.config().steps},
              {"interrupted", interrupted},
              {"diverged", st.diverged},
              {"diverged_step", st.diverged ? json(st.diverged_step) : json(nullptr)},
              {"seconds", st.seconds},
              {"steps_per_sec", st.steps_per_sec},
              {"eval_seconds", r.eval_seconds},
              {"val_curve_seconds", r.val_curve_seconds},
              {"threads", threads},
              {"peak_memory_mb", peak_memory_mb()},
              {"seed", run.config().seed},
              {"vocab_size", V},
              {"params", run.model().num_params()},
              {"examples", {{"train", sp.train.size()}, {"val", sp.val.size()}, {"test", sp.test.size()}}},
              {"run_dir", run.dir()},
              {"makemore_version", version_string()}};
}

}  // namespace

// The loss is not finite. The last checkpoint in the folder (a periodic save of this run, or on
// resume the model it continued from) is still good: evaluate it and say so in result.json, so
// eval / sample / report describe the model that is there instead of finding no result.
void Run::record_divergence(RunResult& r) {
  const std::string metrics = dir_ + "/" + kMetricsFile;
  const int64_t at = r.stats.diverged_step;
  const std::string cure = writer_->resumed
                               ? "start a new run with a lower learning rate (--lr, or train.lr in the config)"
                               : "lower the learning rate (--lr, or train.lr in the config) or fix the initialization";
  std::string kept;
  if (fs::is_regular_file(fs::path(dir_) / kCheckpointFile)) {
    LoadedRun last;
    try {
      last = load_run(dir_);
    } catch (const Error& e) {  // a file from before checkpoints were checked: say both
      r.divergence = fmt::format(
          "training diverged at step {} (loss is not finite); lower the learning rate (--lr, or "
          "train.lr in the config); the losses so far are in {}; the last checkpoint is not usable: {}",
          at, metrics, e.what());
      return;
    }
    const Splits& s = splits();
    const auto e0 = std::chrono::steady_clock::now();
    r.losses = evaluate_splits(*last.model, s);
    r.eval_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - e0).count();
    if (!std::isfinite(r.losses.train) || !std::isfinite(r.losses.val) || !std::isfinite(r.losses.test)) {
      r.divergence = fmt::format(
          "training diverged at step {} (loss is not finite); lower the learning rate (--lr, or train.lr "
          "in the config) or fix the initialization; the losses so far are in {}; the last checkpoint, "
          "step {} in {}/{}, is already past saving (its loss is not finite either)",
          at, metrics, last.step, dir_, kCheckpointFile);
      return;
    }
    r.json = result_json(*this, r, last.step, writer_->settings.threads);
    write_file_atomic(dir_ + "/" + kResultFile, r.json.dump(2) + "\n");
    kept = fmt::format("; the model of step {} is kept in {}/{} (its losses in {}/{})", last.step, dir_, kCheckpointFile, dir_,
                       kResultFile);
  }
  r.divergence = fmt::format("training diverged at step {} (loss is not finite); {}; the losses so far are in {}{}", at, cure,
                             metrics, kept);
}

RunResult Run::train(const TrainHooks& hooks) {
  if (!writer_) throw Error(fmt::format("{}: opened to read; Run::create or Run::resume it to train", dir_));
  Writer& w = *writer_;
  RunTraining files(*this, w);
  TrainControl control;
  control.stop = hooks.stop;
  if (w.resumed) control.resume_from = dir_ + "/" + kTrainStateFile;
  control.on_trained = [&files](Trainer& t, const TrainStats& st) { files.save_trained(t, st); };
  const TrainOutcome out = train_and_evaluate(*model_, config_, splits(), files.observers(hooks.observers), control);
  RunResult r;
  r.stats = out.stats;
  r.losses = out.losses;
  r.eval_seconds = out.eval_seconds;
  r.val_curve_seconds = files.val_curve_seconds();
  r.resumed_from = w.resumed_from;
  if (out.stats.diverged) {
    record_divergence(r);
    return r;
  }
  save_checkpoint(dir_ + "/" + kCheckpointFile, *model_, config_, vocab_, out.stats.steps, words_fp_);
  step_ = out.stats.steps;
  finishing_ = false;
  r.json = result_json(*this, r, out.stats.steps, w.settings.threads);
  write_file_atomic(dir_ + "/" + kResultFile, r.json.dump(2) + "\n");
  if (hooks.on_saved) hooks.on_saved();
  // Raised during the evaluation or the save: the run is complete and saved; the report waits.
  r.stopped_late = !out.stats.interrupted && hooks.stop && hooks.stop->load();
  if (!out.stats.interrupted && !r.stopped_late && w.settings.report) {
    // The run is complete and saved; a report that cannot be drawn must not fail it.
    try {
      r.report_path = write_report({dir_, "", 20, true}).html_path;
    } catch (const std::exception& e) {
      r.report_error = e.what();
    }
  }
  return r;
}

std::string describe_data(Run& run) {
  const Splits& sp = run.splits();
  return fmt::format("{} | {} words, vocabulary {} | examples train {} / val {} / test {} | {} parameters", run.config().name,
                     run.data().size(), run.vocab().size(), sp.train.size(), sp.val.size(), sp.test.size(),
                     run.model().num_params());
}

std::string describe_start(const Run& run) {
  const Config& cfg = run.config();
  if (run.finishing())
    return fmt::format("all {} steps were done; finishing the run (evaluation, result, report) -> {}", cfg.steps, run.dir());
  if (run.resumed())
    return fmt::format("continuing from step {} to {}, batch {}, seed {} -> {}", run.step(), cfg.steps, cfg.batch_size, cfg.seed,
                       run.dir());
  return fmt::format("{} steps, batch {}, seed {} -> {}", cfg.steps, cfg.batch_size, cfg.seed, run.dir());
}

std::string describe_result(const Run& run, const RunResult& r) {
  const int V = run.vocab().size();
  std::string s;
  if (!r.stats.interrupted || r.stats.steps > 0)
    s += fmt::format("initial loss {:.4f} (expected -ln(1/{}) = {:.4f})\n", r.stats.initial_loss, V,
                     std::log(static_cast<double>(V)));
  s += fmt::format("train {:.4f}\nval {:.4f}\ntest {:.4f}\n", r.losses.train, r.losses.val, r.losses.test);
  if (run.resumed()) s += fmt::format("steps {} to {}: ", r.resumed_from, r.stats.steps);
  s += fmt::format(
      "{} steps in {:.2f}s ({:.0f} steps/s), evaluation of the three splits {:.0f} ms, peak memory {:.1f} MB; run "
      "saved in {}\n",
      r.stats.steps - r.resumed_from, r.stats.seconds, r.stats.steps_per_sec, 1e3 * r.eval_seconds, peak_memory_mb(), run.dir());
  return s;
}

std::string describe_stop(const Run& run, const RunResult& r) {
  const std::string& dir = run.dir();
  if (r.stats.interrupted)
    return fmt::format(
        "interrupted after {} of {} steps; the model so far is saved in {} (`makemore sample -o {}`, `makemore report -o "
        "{}`); `makemore train --resume -o {}` continues it",
        r.stats.steps, run.config().steps, dir, dir, dir, dir);
  if (r.stopped_late)
    return fmt::format(
        "stopped after the training finished; the run is complete and saved in {}, the report skipped (`makemore report -o "
        "{}` writes it)",
        dir, dir);
  return "";
}

}  // namespace mm
