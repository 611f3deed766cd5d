// `makemore study sweep`: the options of a sweep over config fields (sweep.h), progress lines
// and the table; the work is the library's.
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <memory>

#include "commands.h"
#include "makemore/cluster.h"
#include "makemore/error.h"
#include "makemore/json_text.h"
#include "makemore/presets.h"
#include "makemore/sweep.h"

namespace mm::cli {

namespace {

struct SweepArgs {
  std::string preset, config_path, input, out_dir = "study-sweep", shard;
  std::vector<std::string> grids;
  int seeds = 1, jobs = 0;
  int64_t steps = -1;
  bool json = false, no_resume = false, merge = false;
};

sweep::Options sweep_options(const SweepArgs& a) {
  sweep::Options o;
  const Config base =
      a.config_path.empty() ? load_preset(a.preset.empty() ? kDefaultPreset : a.preset) : load_config_file(a.config_path);
  o.spec.base = base.to_json();
  o.spec.base_name = a.config_path.empty() ? base.name : a.config_path;
  for (const std::string& g : a.grids) o.spec.axes.push_back(sweep::parse_axis(g));
  for (std::size_t i = 0; i < o.spec.axes.size(); ++i)
    for (std::size_t k = 0; k < i; ++k)
      if (o.spec.axes[k].field == o.spec.axes[i].field)
        throw UsageError(fmt::format("--grid {}: the field has two axes; give its values in one --grid", o.spec.axes[i].field));
  o.spec.seeds = a.seeds;
  o.spec.steps = a.steps;
  if (!a.shard.empty()) o.shard = sweep::parse_shard(a.shard);
  if (a.merge && o.shard.on()) throw UsageError("--merge: writes the whole study; leave out --shard");
  o.input = a.input.empty() ? default_words_path() : a.input;
  o.out_dir = a.out_dir;
  o.jobs = study::default_threads(a.jobs);
  o.resume = !a.no_resume;
  return o;
}

int run_study_sweep(const SweepArgs& a) {
  FILE* log = a.json ? stderr : stdout;
  const sweep::Options opt = sweep_options(a);
  const auto t0 = std::chrono::steady_clock::now();
  sweep::Hooks hooks;
  const auto stop_message = [&](const std::string& in_flight) {
    on_stop_say(
        fmt::format("stopped{}; the trainings finished so far are kept in {}/runs/: the same command trains the "
                    "rest and writes the study",
                    in_flight.empty() ? "" : " with jobs in flight (" + text_excerpt(in_flight, 600) + ")", opt.out_dir));
  };
  hooks.say = [&](const std::string& line) {
    fmt::print(stderr, "{}\n", line);
    stop_message("");
  };
  hooks.in_flight = stop_message;
  on_stop_also(cluster::write_ended_ranks);  // under MPI: which rank ended, when one did
  hooks.progress = [&](int done, int total, const std::string& name, const study::Finished& f) {
    if (f.reused) {
      if (done == total || done % 100 == 0) fmt::print(stderr, "  [{}/{}] kept from an earlier run\n", done, total);
      return;
    }
    const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const std::string what = f.ok() ? fmt::format("val {:.4f}", f.record.outcome.losses.val) : "failed: " + f.error;
    fmt::print(stderr, "  [{}/{}] {}: {} ({:.1f}s), elapsed {:.0f}s\n", done, total, name, what, f.record.seconds, el);
    std::fflush(stderr);
  };
  const sweep::Result r = sweep::run_sweep(opt, hooks);
  if (r.worker) return 0;  // another MPI rank: rank 0 prints
  if (r.ranks > 1 && r.trained > 0)
    fmt::print(stderr, "MPI: {} ranks; rank 0 spent {:.3f} ms of CPU per training handing it out and storing it\n", r.ranks,
               1e3 * r.coordinator_seconds / r.trained);
  if (opt.shard.on()) {
    fmt::print(log,
               "shard {}/{}: {} ran now, {} kept, {} failed; when every shard is done, run the same command without "
               "--shard (or with --merge) to write the study\n",
               opt.shard.k, opt.shard.n, r.trained, r.reused, r.failed);
    return r.failed > 0 ? 1 : 0;
  }
  fmt::print(log,
             "\n{}\n{} trainings: {} ran now, {} kept from an earlier run, {} failed\nresults in {}/study.json, "
             "results.csv and study.html\n",
             r.table, r.total, r.trained, r.reused, r.failed, opt.out_dir);
  if (a.json) fmt::print("{}\n", r.study.dump());
  if (r.failed > 0)
    fmt::print(stderr,
               "makemore: error: {} of {} trainings failed (their errors are in {}/study.json); fix the cause and run "
               "the same command again: it keeps the finished ones\n",
               r.failed, r.total, opt.out_dir);
  return r.failed > 0 ? 1 : 0;
}

}  // namespace

Runner add_study_sweep(CLI::App& study) {
  auto a = std::make_shared<SweepArgs>();
  auto* c = study.add_subcommand("sweep", "Any config fields as axes (--grid FIELD=v1,v2), N seeds per cell, mean ± std");
  auto* p = c->add_option("--preset", a->preset, "Base network (see `makemore presets`; default lecture-batchnorm)");
  auto* f = c->add_option("--config", a->config_path, "Base config file (JSON) instead of a preset");
  p->excludes(f);
  c->add_option("--grid", a->grids,
                "An axis: a config field as error messages spell it and its values, e.g. train.lr=0.01,0.1 or "
                "model.layers[0].weight_init.gain=1,tanh (or preset=NAME1,NAME2); repeat for more axes")
      ->allow_extra_args(false);
  c->add_option("--seeds", a->seeds, "Seeds per cell (train.seed, +1, +2, ...)")
      ->capture_default_str()
      ->check(number_in(a->seeds, 1, 1000));
  c->add_option("--steps", a->steps, "Steps per training (default: the base config's)")->check(at_least(a->steps, 0));
  c->add_option("--jobs,-j", a->jobs, "Trainings at a time (default: one per core)")->check(number_in(a->jobs, 0, 256));
  c->add_option("-i,--input", a->input, "Word list (default: data/names.txt)");
  c->add_option("-o,--out", a->out_dir, "Folder for study.json, results.csv, study.html and runs/ (the finished trainings)")
      ->capture_default_str();
  c->add_option("--shard", a->shard,
                "K/N: train only the K-th of N slices of the trainings into DIR/runs/ (a job array's task); writes no "
                "outputs");
  c->add_flag("--merge", a->merge,
              "Write the outputs from the finished trainings (a job array's last step); trains whatever is missing, as a "
              "plain run does");
  c->add_flag("--no-resume", a->no_resume, "Train every job again (default: keep those finished in DIR/runs/)");
  c->add_flag("--json", a->json, "Print study.json on stdout (the table goes to stderr)");
  return [a] { return run_study_sweep(*a); };
}

}  // namespace mm::cli
