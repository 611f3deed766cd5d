// `makemore train`: trains a preset or config on a word list into a run folder.
#include <fmt/format.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string_view>

#include "commands.h"
#include "makemore/data.h"
#include "makemore/diag.h"
#include "makemore/error.h"
#include "makemore/metrics.h"
#include "makemore/parallel.h"
#include "makemore/perf.h"
#include "makemore/presets.h"
#include "makemore/report.h"
#include "makemore/run.h"
#include "makemore/train.h"
#include "makemore/version.h"

namespace mm::cli {

namespace {

struct TrainArgs {
  std::string input, out_dir = "out", preset, config_path;
  int64_t steps = -1;
  int64_t seed = -1, split_seed = -1;
  int batch_size = -1;
  std::string optimizer;  // a type name: that optimizer with PyTorch's defaults
  double lr = -1;         // a constant learning rate
  bool json = false, quiet = false, calibrate = false;
  bool no_report = false, resume = false, overwrite = false;
  int64_t diag_every = -1;  // -1: not given (1000, or a resumed run's own)
  int64_t save_every = -1;  // -1: not given (10000, or a resumed run's own)
  int threads = 1;
};

// On a terminal: one live line (step, loss, steps/s, ETA). Otherwise the lecture's log line
// every 10k steps (and the last step).
class Progress : public Observer {
 public:
  Progress(FILE* out, bool live, int64_t total) : out_(out), live_(live), total_(total) {}
  void on_begin(Trainer& t) override {
    start_ = t.first_step();
    t0_ = last_ = std::chrono::steady_clock::now();
  }
  void after_forward(Trainer&, int64_t step, float loss) override {
    if (!live_) {
      if (step % 10000 == 0) fmt::print(out_, "{:7d}/{:7d}: {:.4f}\n", step, total_, loss);
      return;
    }
    if ((step & 255) != 0 && step + 1 != total_) return;
    const auto now = std::chrono::steady_clock::now();
    if (now - last_ < std::chrono::milliseconds(100) && step + 1 != total_) return;
    last_ = now;
    const double el = std::chrono::duration<double>(now - t0_).count();
    const double rate = el > 0 ? static_cast<double>(step + 1 - start_) / el : 0;
    const double eta = rate > 0 ? static_cast<double>(total_ - step - 1) / rate : 0;
    fmt::print(out_, "\r  step {:>7}/{} | loss {:.4f} | {:>8.0f} steps/s | ETA {:5.1f}s ", step + 1, total_, loss, rate, eta);
    std::fflush(out_);
  }
  void on_end(Trainer&) override {
    if (live_) fmt::print(out_, "\n");
  }

 private:
  FILE* out_;
  bool live_;
  int64_t total_, start_ = 0;
  std::chrono::steady_clock::time_point t0_, last_;
};

// Ctrl-C (SIGINT) or SIGTERM during training: finish the current step, then evaluate and save,
// and exit 128 + signal, instead of losing the run; during the final evaluation, finish and save
// it but skip the report. A second signal ends the process at once.
std::atomic<bool> g_stop{false};
volatile std::sig_atomic_t g_stop_signal = 0;
extern "C" void on_stop_signal(int sig) {
  g_stop_signal = sig;
  g_stop.store(true, std::memory_order_relaxed);
  std::signal(sig, SIG_DFL);
  static const char msg[] = "\nmakemore: stopping: saving what is done first (press again to quit at once)\n";
  const ssize_t written = write(STDERR_FILENO, msg, sizeof msg - 1);  // async-signal-safe
  (void)written;
}

// Installs the handler for SIGINT and SIGTERM while alive.
struct StopSignals {
  StopSignals() {
    static_assert(std::atomic<bool>::is_always_lock_free);
    g_stop.store(false);
    std::signal(SIGINT, on_stop_signal);
    std::signal(SIGTERM, on_stop_signal);
  }
  ~StopSignals() {
    std::signal(SIGINT, SIG_DFL);
    std::signal(SIGTERM, SIG_DFL);
  }
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;
};

// Every `every` steps (not the last), the run so far onto disk: loss log and diagnostics
// flushed, train state, then checkpoint (each file replaced atomically), so that a run killed
// outright (SIGKILL, out of memory, power) can be sampled and continued with --resume.
class Checkpointer : public Observer {
 public:
  Checkpointer(std::string dir, int64_t every, int64_t diag_every, const Config& cfg, const Vocab& vocab,
               std::string words_fp, MetricsWriter& metrics, RunDiagnostics* diag)
      : dir_(std::move(dir)), every_(every), diag_every_(diag_every), cfg_(cfg), vocab_(vocab),
        words_fp_(std::move(words_fp)), metrics_(metrics), diag_(diag) {}
  void after_update(Trainer& t, int64_t step, double) override {
    const int64_t done = step + 1;
    if (every_ <= 0 || done % every_ != 0 || done >= cfg_.steps) return;
    // Parameters whose next loss is not finite are reported as a divergence at the next step;
    // they must not replace the last good checkpoint first.
    if (!std::isfinite(t.probe_next_loss())) return;
    metrics_.flush();
    if (diag_) diag_->flush();
    save_train_state(dir_ + "/" + kTrainStateFile, t.optimizer(), t.generator(), t.model(),
                     {done, t.initial_loss(), diag_every_, every_});
    save_checkpoint(dir_ + "/" + kCheckpointFile, t.model(), cfg_, vocab_, done, words_fp_);
  }

 private:
  std::string dir_;
  int64_t every_, diag_every_;
  const Config& cfg_;
  const Vocab& vocab_;
  std::string words_fp_;
  MetricsWriter& metrics_;
  RunDiagnostics* diag_;
};

int run_train(const TrainArgs& a) {
  FILE* log = a.json ? stderr : stdout;  // with --json, stdout carries only the JSON
  set_threads(a.threads);
  namespace fs = std::filesystem;
  const std::string dir = a.out_dir;
  std::error_code ec;

  Config cfg;
  std::string input;
  Dataset data;
  std::unique_ptr<Model> model_ptr;
  int64_t resume_step = 0, saved_diag_every = -1, saved_save_every = -1;
  if (a.resume) {
    // Everything comes from the run folder: its config, its word list, its checkpoint and
    // train state. Only the total number of steps may change (to train further).
    LoadedRun run = load_run(dir);
    if (!fs::exists(fs::path(dir) / kTrainStateFile))
      throw Error(fmt::format("{}/{}: missing, so the run cannot be continued exactly; train it again with `makemore train -o {}`",
                              dir, kTrainStateFile, dir));
    cfg = run.config;
    model_ptr = std::move(run.model);
    {
      // Check the train state before the folder is touched (the real load is in the Trainer).
      // It holds the parameters too: a run killed between writing it and the checkpoint has a
      // newer state than checkpoint, and continues from the state.
      Optimizer probe(cfg.optimizer, model_ptr->params().values().size());
      TorchGenerator gen;
      const TrainState st = load_train_state(dir + "/" + kTrainStateFile, probe, gen, *model_ptr);
      resume_step = st.step;
      saved_diag_every = st.diag_every;
      saved_save_every = st.save_every;
    }
    if (a.steps >= 0) cfg.steps = a.steps;
    if (resume_step >= cfg.steps)
      throw Error(a.steps >= 0 && a.steps < resume_step
                      ? fmt::format("--steps {}: the run in {} already has {} steps; pass --steps N with N > {} to train it "
                                    "further (N counts all steps, not the new ones)",
                                    a.steps, dir, resume_step, resume_step)
                      : fmt::format("{}: the run already has {} of its {} steps; pass --steps N with N > {} to train it further",
                                    dir, resume_step, cfg.steps, resume_step));
    data = load_run_dataset(dir, run);
    input = data.source();
  } else {
    cfg = a.config_path.empty() ? load_preset(a.preset.empty() ? kDefaultPreset : a.preset) : load_config_file(a.config_path);
    if (a.steps >= 0) cfg.steps = a.steps;
    if (a.seed >= 0) cfg.seed = static_cast<uint64_t>(a.seed);
    if (a.split_seed >= 0) cfg.split_seed = static_cast<uint64_t>(a.split_seed);
    if (a.batch_size > 0) cfg.batch_size = a.batch_size;
    bool has_bn = false;
    for_each_spec(cfg.layers, [&](const LayerSpec& l) { has_bn |= l.type == "batchnorm1d"; });
    if (a.batch_size == 1 && has_bn)  // named as typed, not as the config field it overrides
      throw Error(fmt::format("--batch-size 1: {} has BatchNorm1d, which normalizes over the batch and needs at least 2 "
                              "examples; use --batch-size 2 or more (the lecture uses 32)",
                              a.config_path.empty() ? "preset " + cfg.name : a.config_path));
    if (a.calibrate) cfg.calibrate_batchnorm = true;
    nlohmann::json cfg_json = cfg.to_json();
    if (!a.optimizer.empty()) cfg_json["train"]["optimizer"] = a.optimizer;
    if (a.lr >= 0) cfg_json["train"]["lr"] = a.lr;
    cfg = parse_config(cfg_json, "command line");  // re-validate after the overrides
    input = a.input.empty() ? default_words_path() : a.input;
    data = Dataset::load(input);
    if (const std::string note = data.empty_lines_note(); !note.empty()) fmt::print(stderr, "makemore: note: {}\n", note);
  }
  if (cfg.lr.warmup > cfg.steps)
    fmt::print(stderr, "makemore: note: train.lr.warmup is {} steps, longer than the run's {}: the learning rate only "
               "reaches {:.3g} of its schedule's\n", cfg.lr.warmup, cfg.steps,
               static_cast<double>(cfg.steps) / static_cast<double>(cfg.lr.warmup));
  const Vocab& vocab = data.vocab();
  Splits splits = data.split_nonempty(cfg.block_size, cfg.split_seed);

  if (!a.resume) {
    // Build the network before touching the run folder: a config whose layers do not fit
    // together (e.g. a flatten that does not divide block_size) fails here, naming the config.
    try {
      model_ptr = std::make_unique<Model>(cfg, vocab.size());
    } catch (const std::invalid_argument& e) {
      const std::string source = a.config_path.empty() ? "preset " + cfg.name : a.config_path;
      // Errors that already name their field (a residual branch's width) keep it.
      const bool named = std::string_view(e.what()).starts_with("model.");
      throw Error(fmt::format("{}: {}{}", source, named ? "" : "model.layers: ", e.what()));
    }
    if (cfg.calibrate_batchnorm && !model_ptr->has_running_stats())
      fmt::print(stderr, "makemore: note: --calibrate: {} has no BatchNorm layer; nothing to calibrate\n",
                 a.config_path.empty() ? "preset " + cfg.name : a.config_path);
    // A run that did not finish (Ctrl-C, killed) is a training's worth of work that --resume
    // continues; a new run must not replace it unless asked to.
    if (!a.overwrite && fs::is_regular_file(fs::path(dir) / kTrainStateFile)) {
      std::optional<nlohmann::json> prev;
      try {
        if (fs::is_regular_file(fs::path(dir) / kResultFile)) prev = read_json_file(dir + "/" + kResultFile);
      } catch (const Error&) {
      }
      // Finished, or diverged (continuing it would diverge again): replaced as before.
      if (!prev || prev->value("interrupted", false))
        throw Error(fmt::format("{}: holds a run that did not finish{}; continue it with `makemore train --resume -o {}`, "
                                "or pass --overwrite to replace it with this new run",
                                dir,
                                prev && prev->contains("steps") && prev->contains("steps_planned")
                                    ? fmt::format(" ({} of {} steps)", (*prev)["steps"].dump(), (*prev)["steps_planned"].dump())
                                    : std::string(" (stopped or killed)"),
                                dir));
    }
    fs::create_directories(dir, ec);
    if (ec || !fs::is_directory(dir))
      throw Error(fmt::format("{}: cannot create the run folder ({}); pick another -o DIR", dir, ec ? ec.message() : "not a directory"));
    // A previous run's results must not pass for this one's if it fails part way.
    for (const char* stale : {kResultFile, kCheckpointFile, kTrainStateFile}) fs::remove(fs::path(dir) / stale, ec);
    remove_report(dir);  // drawn again at the end, unless --no-report
    std::string words;
    for (const auto& w : data.words()) words += to_utf8(w) + "\n";
    write_file_atomic(dir + "/" + kWordsFile, words);
  } else {
    // The checkpoint and train state stay until the continued run replaces them.
    fs::remove(fs::path(dir) / kResultFile, ec);
    remove_report(dir);
    // A run killed after its last checkpoint may have logged later steps: they are run again.
    for (const char* f : {kDiagnosticsFile, kUpdateRatioFile}) keep_records_before(dir + "/" + f, resume_step);
    if (const int64_t losses = keep_records_before(dir + "/" + kMetricsFile, resume_step); losses < resume_step)
      fmt::print(stderr, "makemore: note: {}/{} holds the losses of {} of the {} steps done (the file was cut or edited); "
                 "the loss curve and the loss log will have a gap there\n", dir, kMetricsFile, losses, resume_step);
  }
  write_file_atomic(dir + "/" + kConfigFile, cfg.to_json().dump(2) + "\n");

  Model& model = *model_ptr;
  fmt::print(log, "makemore: {} | {} words, vocabulary {} | examples train {} / val {} / test {} | {} parameters\n",
             cfg.name, data.size(), vocab.size(), splits.train.size(), splits.val.size(), splits.test.size(),
             model.num_params());
  if (a.resume)
    fmt::print(log, "makemore: continuing from step {} to {}, batch {}, seed {} -> {}\n", resume_step, cfg.steps,
               cfg.batch_size, cfg.seed, dir);
  else
    fmt::print(log, "makemore: {} steps, batch {}, seed {} -> {}\n", cfg.steps, cfg.batch_size, cfg.seed, dir);
  std::fflush(log);

  MetricsWriter metrics(dir + "/" + kMetricsFile, a.resume);
  Progress progress(log, !a.json && !a.quiet && stdout_is_terminal(), cfg.steps);
  std::vector<Observer*> obs{&metrics};
  if (!a.quiet) obs.push_back(&progress);
  std::unique_ptr<RunDiagnostics> diag;
  // A resumed run records as it did unless told otherwise.
  const int64_t diag_every = a.diag_every >= 0 ? a.diag_every : saved_diag_every >= 0 ? saved_diag_every : 1000;
  const int64_t save_every = a.save_every >= 0 ? a.save_every : saved_save_every >= 0 ? saved_save_every : 10000;
  if (diag_every > 0) {
    DiagOptions dopt;
    dopt.every = diag_every;
    dopt.bins = 40;  // a diagnostics.jsonl line stays under ~20 KB
    dopt.last_step = cfg.steps - 1;
    dopt.sample_from = &splits.train;
    diag = std::make_unique<RunDiagnostics>(dir, dopt, a.resume);
    if (a.resume) {
      std::vector<float> earlier = read_losses(dir + "/" + kMetricsFile);
      earlier.resize(std::min(earlier.size(), static_cast<std::size_t>(resume_step)));
      diag->observer().set_history(std::move(earlier),
                                   read_update_ratios(dir + "/" + kUpdateRatioFile, model.params(), resume_step));
    }
    obs.push_back(&diag->observer());
  } else {
    RunDiagnostics::remove_stale(dir);
  }
  std::optional<StopSignals> stop_signals(std::in_place);
  const std::string& words_fp = data.fingerprint();
  Checkpointer checkpointer(dir, save_every, diag_every, cfg, vocab, words_fp, metrics, diag.get());
  obs.push_back(&checkpointer);  // last: after this step's loss and diagnostics are recorded
  TrainControl control;
  control.stop = &g_stop;
  control.save_state_to = dir + "/" + kTrainStateFile;
  control.diag_every = diag_every;
  control.save_every = save_every;
  if (a.resume) control.resume_from = control.save_state_to;
  TrainOutcome res = train_and_evaluate(model, cfg, splits, obs, control);
  const bool interrupted = res.stats.interrupted;
  if (res.stats.diverged) {
    // The last checkpoint in the folder (a periodic save of this run, or on --resume the model it
    // continued from) is still good: evaluate it and say so in result.json, so eval / sample /
    // report describe the model that is there instead of finding no result.
    std::string kept;
    std::optional<LoadedRun> kept_run;
    if (fs::is_regular_file(fs::path(dir) / kCheckpointFile)) {
      try {
        kept_run = load_run(dir);
      } catch (const Error& e) {  // a file from before checkpoints were checked: say both
        throw Error(fmt::format("training diverged at step {} (loss is not finite); lower the learning rate (--lr, or "
                                "train.lr in the config); the losses so far are in {}/{}; the last checkpoint is not usable: {}",
                                res.stats.diverged_step, dir, kMetricsFile, e.what()));
      }
    }
    if (kept_run) {
      LoadedRun& last = *kept_run;
      const SplitLosses l{last.model->evaluate(splits.train), last.model->evaluate(splits.val), last.model->evaluate(splits.test)};
      if (!std::isfinite(l.train) || !std::isfinite(l.val) || !std::isfinite(l.test))
        throw Error(fmt::format("training diverged at step {} (loss is not finite); lower the learning rate (--lr, or train.lr in "
                                "the config) or fix the initialization; the losses so far are in {}/{}; the last checkpoint, "
                                "step {} in {}/{}, is already past saving (its loss is not finite either)",
                                res.stats.diverged_step, dir, kMetricsFile, last.step, dir, kCheckpointFile));
      nlohmann::json result{{"preset", cfg.name},
                            {"input", input},
                            {"initial_loss", res.stats.initial_loss},
                            {"expected_initial_loss", std::log(static_cast<double>(vocab.size()))},
                            {"train_loss", l.train},
                            {"val_loss", l.val},
                            {"test_loss", l.test},
                            {"steps", last.step},
                            {"diverged", true},
                            {"diverged_step", res.stats.diverged_step},
                            {"steps_planned", cfg.steps},
                            {"seed", cfg.seed},
                            {"vocab_size", vocab.size()},
                            {"params", model.num_params()},
                            {"run_dir", dir},
                            {"makemore_version", version_string()}};
      write_file_atomic(dir + "/" + kResultFile, result.dump(2) + "\n");
      kept = fmt::format("; the model of step {} is kept in {}/{} (its losses in {}/{})", last.step, dir, kCheckpointFile, dir,
                         kResultFile);
    }
    const std::string cure = a.resume ? "start a new run with a lower learning rate (--lr, or train.lr in the config)"
                                      : "lower the learning rate (--lr, or train.lr in the config) or fix the initialization";
    throw Error(fmt::format("training diverged at step {} (loss is not finite); {}; the losses so far are in {}/{}{}",
                            res.stats.diverged_step, cure, dir, kMetricsFile, kept));
  }

  save_checkpoint(dir + "/" + kCheckpointFile, model, cfg, vocab, res.stats.steps, words_fp);
  if (diag && res.stats.steps == 0) {
    // No step ran, so nothing was observed: measure the network as initialized, as `makemore
    // inspect` does (the same config and seed draw the same weights and first minibatch).
    write_file_atomic(dir + "/" + kInspectFile, report_json(inspect_training(cfg, splits, vocab.size(), 0)).dump(1) + "\n");
  } else if (diag) {
    diag->write_inspect(model, cfg.name, vocab.size());
  }
  nlohmann::json result{
      {"preset", cfg.name},
      {"input", input},
      {"initial_loss", interrupted && res.stats.steps == 0 ? nlohmann::json(nullptr) : nlohmann::json(res.stats.initial_loss)},
      {"expected_initial_loss", std::log(static_cast<double>(vocab.size()))},
      {"train_loss", res.losses.train},
      {"val_loss", res.losses.val},
      {"test_loss", res.losses.test},
      {"steps", res.stats.steps},
      {"seconds", res.stats.seconds},
      {"steps_per_sec", res.stats.steps_per_sec},
      {"eval_train_seconds", res.eval_seconds},
      {"threads", a.threads},
      {"peak_memory_mb", peak_memory_mb()},
      {"seed", cfg.seed},
      {"vocab_size", vocab.size()},
      {"params", model.num_params()},
      {"examples", {{"train", splits.train.size()}, {"val", splits.val.size()}, {"test", splits.test.size()}}},
      {"run_dir", dir},
      {"makemore_version", version_string()}};
  if (interrupted) {
    result["interrupted"] = true;
    result["steps_planned"] = cfg.steps;
  }
  write_file_atomic(dir + "/" + kResultFile, result.dump(2) + "\n");
  stop_signals.reset();  // saved: from here a signal ends the process as usual
  const bool stopped_late = !interrupted && g_stop.load();  // during the evaluation or the save
  if (!interrupted || res.stats.steps > 0)
    fmt::print(log, "initial loss {:.4f} (expected -ln(1/{}) = {:.4f})\n", res.stats.initial_loss, vocab.size(),
               std::log(static_cast<double>(vocab.size())));
  fmt::print(log, "train {:.4f}\nval {:.4f}\ntest {:.4f}\n", res.losses.train, res.losses.val, res.losses.test);
  if (a.resume) fmt::print(log, "steps {} to {}: ", resume_step, res.stats.steps);
  fmt::print(log, "{} steps in {:.2f}s ({:.0f} steps/s), evaluation of the training split {:.0f} ms, peak memory {:.1f} MB; run saved in {}\n",
             res.stats.steps - resume_step, res.stats.seconds, res.stats.steps_per_sec, 1e3 * res.eval_seconds, peak_memory_mb(),
             dir);
  if (interrupted) {
    fmt::print(stderr,
               "makemore: interrupted after {} of {} steps; the model so far is saved in {} (`makemore sample -o {}`, "
               "`makemore report -o {}`); `makemore train --resume -o {}` continues it\n",
               res.stats.steps, cfg.steps, dir, dir, dir, dir);
    if (a.json) fmt::print("{}\n", result.dump());
    return 128 + static_cast<int>(g_stop_signal);
  }
  if (stopped_late) {
    fmt::print(stderr, "makemore: stopped after the training finished; the run is complete and saved in {}, the report "
               "skipped (`makemore report -o {}` writes it)\n", dir, dir);
    if (a.json) fmt::print("{}\n", result.dump());
    return 128 + static_cast<int>(g_stop_signal);
  }
  if (!a.no_report) {
    // The run is complete and saved; a report that cannot be drawn must not fail it.
    try {
      fmt::print(log, "report: {}\n", write_report({dir, "", 20, true}).html_path);
    } catch (const std::exception& e) {
      fmt::print(stderr, "makemore: warning: report not written: {}\n", e.what());
    }
  }
  if (a.json) fmt::print("{}\n", result.dump());
  return 0;
}

}  // namespace

Runner add_train(CLI::App& app) {
  auto a = std::make_shared<TrainArgs>();
  auto* c = app.add_subcommand("train", "Train a network on a word list into a run folder");
  c->add_option("-i,--input", a->input, "Word list: UTF-8 text, one item per line (default: data/names.txt)");
  c->add_option("-o,--out", a->out_dir, "Run folder for config, checkpoint, metrics and results")->capture_default_str();
  auto* p = c->add_option("--preset", a->preset, "Built-in network (see `makemore presets`; default lecture-batchnorm)");
  auto* f = c->add_option("--config", a->config_path, "Config file (JSON; start from `makemore presets show NAME`)");
  p->excludes(f);
  c->add_option("--steps", a->steps, "Training steps (overrides the config)")->check(at_least(a->steps, 0));
  c->add_option("--seed", a->seed, "Seed of the weights and minibatches (default: the lecture's 2147483647)")->check(at_least(a->seed, 0));
  c->add_option("--split-seed", a->split_seed, "Seed of the 80/10/10 shuffle (default: the lecture's 42)")->check(at_least(a->split_seed, 0));
  c->add_option("--batch-size", a->batch_size, "Minibatch size (overrides the config)")->check(at_least(a->batch_size, 1));
  c->add_option("--optimizer", a->optimizer, "Optimizer with PyTorch's defaults (overrides the config; settings in train.optimizer)")
      ->check(CLI::IsMember({"sgd", "rmsprop", "adam", "adamw"}));
  c->add_option("--lr", a->lr, "Constant learning rate (overrides the config's schedule)")->check(at_least(a->lr, 0));
  c->add_flag("--calibrate", a->calibrate, "After training, set BatchNorm running statistics from the whole training set");
  c->add_flag("--json", a->json, "Print the result as one JSON object on stdout (logs go to stderr)");
  c->add_flag("-q,--quiet", a->quiet, "No progress output");
  c->add_option("--diag-every", a->diag_every,
                 "Record activation / gradient / update statistics every N steps into diagnostics.jsonl, "
                 "update_ratio.jsonl and inspect.json (0: off; default 1000, or a resumed run's own)")
      ->check(at_least(a->diag_every, 0));
  c->add_option("--threads", a->threads,
                 "Cores one training may use: large matrix products and the evaluation split over them (the lecture's "
                 "small networks gain little; studies run one training per core instead)")
      ->capture_default_str()
      ->check(number_in(a->threads, 1, 256));
  c->add_flag("--no-report", a->no_report, "Do not write report.html into the run folder");
  c->add_option("--save-every", a->save_every,
                "Save the checkpoint and train state every N steps while training, so even a killed run can be "
                "sampled and continued with --resume (0: only at the end; default 10000, or a resumed run's own)")
      ->check(at_least(a->save_every, 0));
  auto* r = c->add_flag("--resume", a->resume,
                        "Continue the run in -o DIR (stopped by Ctrl-C, or finished: with --steps N to train further) "
                        "with its own config and word list; the same bits as a run never stopped");
  auto* ow = c->add_flag("--overwrite", a->overwrite,
                         "Replace a run in -o DIR that did not finish (stopped or killed: --resume continues it); a "
                         "finished run is replaced without it");
  r->excludes(ow);
  for (const char* other : {"--preset", "--config", "--input", "--seed", "--split-seed", "--batch-size", "--optimizer", "--lr",
                            "--calibrate"})
    r->excludes(c->get_option(other));
  return [a] { return run_train(*a); };
}

}  // namespace mm::cli
