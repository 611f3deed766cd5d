// `makemore study init`: the lecture's "loss log" with error bars (study_init.h), and the
// `study` command that holds the other studies.
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <memory>

#include "commands.h"
#include "makemore/study_init.h"

namespace mm::cli {

namespace {

struct StudyInitArgs {
  study::InitOptions opt;
  bool json = false;
  bool no_resume = false;  // train again the runs already finished in DIR/runs
};

int run_study_init(StudyInitArgs a) {
  FILE* log = a.json ? stderr : stdout;
  if (a.opt.input.empty()) a.opt.input = default_words_path();
  a.opt.resume = !a.no_resume;
  const bool live = !a.json && stdout_is_terminal();
  const auto t0 = std::chrono::steady_clock::now();
  study::InitHooks hooks;
  hooks.say = [&](const std::string& line) {
    fmt::print(log, "{}\n", line);
    std::fflush(log);
    on_stop_say(
        fmt::format("interrupted; the trainings finished so far are kept in {}/runs/: the same command trains the "
                    "rest and writes the study",
                    a.opt.out_dir));
  };
  hooks.progress = [&](int done, int total, int kept) {
    const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double eta = el / done * (total - done);
    fmt::print(log, "{}  {}/{} trainings done, {:.0f}s elapsed, ETA {:.0f}s{}", live ? "\r" : "", done + kept, total + kept, el,
               eta, live ? " " : "\n");
    std::fflush(log);
  };
  study::InitOutput out = study::run_init_study(a.opt, hooks);
  if (out.worker) return 0;  // another MPI rank: rank 0 prints
  if (live && out.trained > 0) fmt::print(log, "\n");
  fmt::print(log, "{}results in {}/study.json, study.html and figures/\n", out.report, a.opt.out_dir);
  if (a.json) {
    for (auto& v : out.study["variants"]) v.erase("runs");
    fmt::print("{}\n", out.study.dump());
  }
  return 0;
}

}  // namespace

Runner add_study(CLI::App& app) {
  auto a = std::make_shared<StudyInitArgs>();
  auto* c = app.add_subcommand("study",
                               "Studies over many trainings: `study init` (the lecture's loss log with error bars), `study "
                               "fidelity`, `study depth`, `study sweep`");
  c->require_subcommand(1);
  auto* init = c->add_subcommand("init", "Train the five single-layer lecture variants over N seeds; mean ± std vs the lecture");
  study::InitOptions& o = a->opt;
  init->add_option("--seeds", o.seeds, "Seeds per variant (the lecture's seed first)")
      ->capture_default_str()
      ->check(number_in(o.seeds, 1, 1000));
  init->add_option("--jobs,-j", o.jobs, "Trainings at a time (default: one per core)")->check(number_in(o.jobs, 0, 256));
  init->add_option("--steps", o.steps, "Steps per training (default: the presets' 200,000)")->check(at_least(o.steps, 0));
  init->add_option("-i,--input", o.input, "Word list (default: data/names.txt)");
  init->add_option("-o,--out", o.out_dir, "Folder for study.json, figures/ and runs/ (each finished training, kept for a rerun)")
      ->capture_default_str();
  init->add_flag("--json", a->json, "Print the summary as one JSON object on stdout");
  init->add_flag("--no-resume", a->no_resume,
                 "Train every run again (default: keep the runs finished in DIR/runs/ with the same config and words)");
  Runner fidelity = add_study_fidelity(*c);
  Runner depth = add_study_depth(*c);
  Runner sweep = add_study_sweep(*c);
  return [a, init, c, fidelity, depth, sweep] {
    if (init->parsed()) return run_study_init(*a);
    if (c->got_subcommand("depth")) return depth();
    if (c->got_subcommand("sweep")) return sweep();
    return fidelity();
  };
}

}  // namespace mm::cli
