// `makemore train`: trains a preset or config on a word list into a run folder. The options
// become a Config and a Dataset; everything about the folder (refusing, resuming, saving,
// result.json, the report) is the library's Run (run.h). Signals are this file's: Ctrl-C raises
// the stop flag the library polls between steps.
#include <fmt/format.h>

#include <cstdio>
#include <optional>

#include "commands.h"
#include "makemore/error.h"
#include "makemore/metrics.h"
#include "makemore/parallel.h"
#include "makemore/presets.h"
#include "makemore/run.h"

namespace mm::cli {

namespace {

struct TrainArgs {
  std::string input, out_dir = "out", preset, config_path;
  TrainOverrides o;  // --steps, --seed, --split-seed, --batch-size, --optimizer, --lr, --calibrate
  bool json = false, quiet = false, no_report = false, resume = false, overwrite = false;
  RunSettings settings{-1, -1, 1, true, [](const std::string& m) { fmt::print(stderr, "makemore: note: {}\n", m); }};
};

Run open_run(const TrainArgs& a) {
  if (a.resume) return Run::resume(a.out_dir, a.o.steps, a.settings);
  const Config base =
      a.config_path.empty() ? load_preset(a.preset.empty() ? kDefaultPreset : a.preset) : load_config_file(a.config_path);
  const std::string source = a.config_path.empty() ? "preset " + base.name : a.config_path;
  const Config cfg = apply_overrides(base, a.o, source);
  return Run::create(a.out_dir, cfg, Dataset::load(a.input.empty() ? default_words_path() : a.input), source, a.overwrite,
                     a.settings);
}

int run_train(const TrainArgs& a) {
  FILE* log = a.json ? stderr : stdout;  // with --json, stdout carries only the JSON
  set_threads(a.settings.threads);
  Run run = open_run(a);
  fmt::print(log, "makemore: {}\n", describe_data(run));
  fmt::print(log, "makemore: {}\n", describe_start(run));
  std::fflush(log);

  // Without a terminal (a notebook, CI) the lecture's log stays on stdout as it is and a
  // progress line goes to stderr every ~10% or 30 s.
  ProgressLog progress(log, !a.json && !a.quiet && stdout_is_terminal(), run.config().steps, stderr);
  std::optional<StopSignals> signals(std::in_place);
  TrainHooks hooks{signals->flag(), {}, [&] { signals.reset(); }};  // saved: a signal ends the process as usual
  if (!a.quiet) hooks.observers.push_back(&progress);
  const RunResult r = run.train(hooks);
  if (!r.divergence.empty()) throw Error(r.divergence);
  fmt::print(log, "{}", describe_result(run, r));
  if (const std::string stop = describe_stop(run, r); !stop.empty())
    fmt::print(stderr, "makemore: {}\n", stop);
  else if (!r.report_path.empty())
    fmt::print(log, "report: {}\n", r.report_path);
  else if (!r.report_error.empty())
    fmt::print(stderr, "makemore: warning: report not written: {}\n", r.report_error);
  if (a.json) fmt::print("{}\n", r.json.dump());
  return r.stats.interrupted || r.stopped_late ? 128 + StopSignals::last_signal() : 0;
}

}  // namespace

Runner add_train(CLI::App& app) {
  auto a = std::make_shared<TrainArgs>();
  auto* c = app.add_subcommand("train", "Train a network on a word list into a run folder");
  c->add_option("-i,--input", a->input,
                "Word list: UTF-8 text, one item per line, at most 64 MiB; - reads standard input (default: data/names.txt)");
  c->add_option("-o,--out", a->out_dir, "Run folder for config, checkpoint, metrics and results")->capture_default_str();
  auto* p = c->add_option("--preset", a->preset, "Built-in network (see `makemore presets`; default lecture-batchnorm)");
  auto* f = c->add_option("--config", a->config_path, "Config file (JSON; start from `makemore presets show NAME`)");
  p->excludes(f);
  c->add_option("--steps", a->o.steps, "Training steps (overrides the config)")->check(at_least(a->o.steps, 0));
  c->add_option("--seed", a->o.seed, "Seed of the weights and minibatches (default: the lecture's 2147483647)")
      ->check(at_least(a->o.seed, 0));
  c->add_option("--split-seed", a->o.split_seed, "Seed of the 80/10/10 shuffle (default: the lecture's 42)")
      ->check(at_least(a->o.split_seed, 0));
  c->add_option("--batch-size", a->o.batch_size, "Minibatch size (overrides the config)")->check(at_least(a->o.batch_size, 1));
  c->add_option("--optimizer", a->o.optimizer,
                "Optimizer with PyTorch's defaults (overrides the config; settings in train.optimizer)")
      ->check(CLI::IsMember({"sgd", "rmsprop", "adam", "adamw"}));
  c->add_option("--lr", a->o.lr, "Constant learning rate (overrides the config's schedule)")->check(at_least(a->o.lr, 0));
  c->add_flag("--calibrate", a->o.calibrate, "After training, set BatchNorm running statistics from the whole training set");
  c->add_flag("--json", a->json, "Print the result as one JSON object on stdout (logs go to stderr)");
  c->add_flag("-q,--quiet", a->quiet, "No progress output");
  c->add_option("--diag-every", a->settings.diag_every,
                "Record activation / gradient / update statistics every N steps into diagnostics.jsonl, "
                "update_ratio.jsonl and inspect.json (0: off; default 1000, or a resumed run's own)")
      ->check(at_least(a->settings.diag_every, 0));
  c->add_option("--eval-every", a->settings.eval_every,
                "Record the validation loss (whole split, eval mode) into metrics.jsonl at step 0, every N steps and at "
                "the end (0: off; default 20000, under 3% of a lecture run's time, or a resumed run's own)")
      ->check(at_least(a->settings.eval_every, 0));
  c->add_option("--threads", a->settings.threads,
                "Cores one training may use: large matrix products and the evaluation split over them (the lecture's "
                "small networks gain little; studies run one training per core instead)")
      ->capture_default_str()
      ->check(number_in(a->settings.threads, 1, 256));
  c->add_flag("--no-report", a->no_report, "Do not write report.html into the run folder");
  c->add_option("--save-every", a->settings.save_every,
                "Save the checkpoint and train state every N steps while training, so even a killed run can be "
                "sampled and continued with --resume (0: only at the end; default 10000, or a resumed run's own)")
      ->check(at_least(a->settings.save_every, 0));
  auto* r = c->add_flag("--resume", a->resume,
                        "Continue the run in -o DIR (stopped by Ctrl-C, or finished: with --steps N to train further) "
                        "with its own config and word list; the same bits as a run never stopped");
  c->add_flag("--overwrite", a->overwrite,
              "Replace a run in -o DIR that did not finish (stopped or killed: --resume continues it); a "
              "finished run is replaced without it");
  for (const char* other : {"--overwrite", "--preset", "--config", "--input", "--seed", "--split-seed", "--batch-size",
                            "--optimizer", "--lr", "--calibrate"})
    r->excludes(c->get_option(other));
  return [a] {
    a->settings.report = !a->no_report;
    return run_train(*a);
  };
}

}  // namespace mm::cli
