// `makemore study depth`: the options of the depth x initialization x normalization x residual
// x optimizer grid, progress with an ETA, and the table; the work is depth.h's.
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <memory>

#include "commands.h"
#include "makemore/cluster.h"
#include "makemore/depth.h"
#include "makemore/error.h"
#include "makemore/study_engine.h"

namespace mm::cli {

namespace {

struct DepthArgs {
  bool full = false, json = false, no_resume = false;
  std::string depths, inits, norms, residual, optimizers;  // comma lists; empty: the preset's
  int seeds = 0;
  int64_t steps = 0;
  int width = 0;
  double sgd_lr = 0, adam_lr = 0;
  // Given on the command line (otherwise the quick or full grid's value).
  CLI::Option *seeds_opt = nullptr, *steps_opt = nullptr, *width_opt = nullptr, *sgd_opt = nullptr, *adam_opt = nullptr;
  std::vector<CLI::Option*> list_opts;  // --depths ... --optimizers: given empty is a mistake, not "the default"
  int jobs = 0;                         // 0: one per core, as study init and fidelity
  std::string input, out_dir = "study-depth";
};

std::string fmt_secs(double s) {
  if (!(s >= 0) || s > 1e7) return "?";
  const long t = static_cast<long>(s + 0.5);
  return t >= 60 ? fmt::format("{}m{:02d}s", t / 60, t % 60) : fmt::format("{}s", t);
}

// The grid and options: the quick or full grid, with what the command line gave.
depth::Options depth_options(const DepthArgs& a) {
  depth::Options opt;
  opt.grid = a.full ? depth::full_grid() : depth::quick_grid();
  depth::Grid& g = opt.grid;
  for (const CLI::Option* o : a.list_opts)
    if (o->count() && o->as<std::string>().empty())
      throw Error(
          fmt::format("{}: empty; give a comma list (see `makemore study depth --help`), or leave the option out for the "
                      "grid's default",
                      o->get_name()));
  if (!a.depths.empty()) g.depths = depth::parse_depths(a.depths);
  if (!a.inits.empty()) g.inits = depth::split_list(a.inits);
  if (!a.norms.empty()) g.norms = depth::split_list(a.norms);
  if (!a.residual.empty()) g.residual = depth::parse_residual(a.residual);
  if (!a.optimizers.empty()) g.optimizers = depth::split_list(a.optimizers);
  if (a.seeds_opt->count()) g.seeds = a.seeds;
  if (a.steps_opt->count()) g.steps = a.steps;
  if (a.width_opt->count()) g.width = a.width;
  if (a.sgd_opt->count()) g.sgd_lr = a.sgd_lr;
  if (a.adam_opt->count()) g.adam_lr = a.adam_lr;
  depth::validate(g);
  opt.jobs = study::default_threads(a.jobs);
  opt.out_dir = a.out_dir;
  opt.input = a.input.empty() ? default_words_path() : a.input;
  opt.resume = !a.no_resume;
  return opt;
}

int run_study_depth(const DepthArgs& a) {
  FILE* log = a.json ? stderr : stdout;
  const depth::Options opt = depth_options(a);
  const depth::Grid& g = opt.grid;
  const auto cells = depth::build_cells(g);
  // Cost of a cell ~ steps x (depth + 1): the ETA weighs finished cells by it.
  double total_units = 0;
  for (const auto& c : cells) total_units += static_cast<double>(c.depth + 1);
  if (cluster::launched().rank == 0)  // under mpirun, once
    fmt::print(stderr,
               "study depth: {} cells ({} depths x {} inits x {} norms x {} residual x {} optimizers x {} seeds), {} steps each, "
               "{} at a time -> {}/\n",
               cells.size(), g.depths.size(), g.inits.size(), g.norms.size(), g.residual.size(), g.optimizers.size(), g.seeds,
               g.steps, opt.jobs, opt.out_dir);
  const auto t0 = std::chrono::steady_clock::now();
  double done_units = 0, reused_units = 0;
  auto progress = [&](int done, int total, const nlohmann::json& cell, bool reused) {
    const double units = cell["depth"].get<int>() + 1.0;
    done_units += units;
    if (reused) {
      reused_units += units;
      if (done == total || done % 50 == 0) fmt::print(stderr, "  [{}/{}] kept from an earlier run\n", done, total);
      return;
    }
    const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double eta = el / (done_units - reused_units) * (total_units - done_units);
    const std::string st = cell["status"].get<std::string>();
    std::string what = st;
    if (cell.contains("val_loss") && cell["val_loss"].is_number())
      what = fmt::format("val {:.4f} {}", cell["val_loss"].get<double>(), st);
    if (st == "failed" && cell.contains("error")) what = "failed: " + cell["error"].get<std::string>();
    fmt::print(stderr, "  [{}/{}] {}: {} ({:.1f}s)  elapsed {}, ETA {}\n", done, total, cell["key"].get<std::string>(), what,
               cell["seconds"].get<double>(), fmt_secs(el), fmt_secs(eta));
    std::fflush(stderr);
  };
  on_stop_also(cluster::write_ended_ranks);  // under MPI: which rank ended, when one did
  on_stop_say(
      fmt::format("interrupted; the cells finished so far are kept in {}/runs/: the same command trains the rest "
                  "and writes study.json and study.html",
                  opt.out_dir));
  const depth::StudyOutput out = depth::run_depth_study(opt, progress);
  if (out.worker) return 0;  // another MPI rank: rank 0 prints
  fmt::print(log, "\n{}", out.table);
  int failed = 0;
  for (const auto& c : out.study["cells"]) failed += c.value("status", std::string()) == "failed" ? 1 : 0;
  fmt::print(log,
             "\n{} cells, {} trained, {} failed, {} kept from an earlier run; {:.0f}s\nresults in {}/study.json, study.html and "
             "figures/\n",
             out.total, out.trained, failed, out.reused, out.study["seconds"].get<double>(), opt.out_dir);
  if (failed > 0)  // after the results: the cells that ran are kept, and rerunning retrains only the failed ones
    fmt::print(stderr,
               "makemore: error: {} of {} cells failed (their errors are above and in {}/study.json); fix the "
               "cause and run the same command again: it keeps the finished cells\n",
               failed, out.total, opt.out_dir);
  if (a.json) {
    nlohmann::json j = out.study;
    for (auto& c : j["cells"]) {
      c.erase("config");
      c.erase("at_init");
    }
    fmt::print("{}\n", j.dump());
  }
  return failed > 0 ? 1 : 0;
}

}  // namespace

Runner add_study_depth(CLI::App& study) {
  auto a = std::make_shared<DepthArgs>();
  auto* c = study.add_subcommand(
      "depth",
      "Depth x initialization x normalization x residual x optimizer grid: does the init still matter in deep networks?");
  c->add_flag(
      "--full", a->full,
      "The full grid: depths 2,5,10,20,50, 4,000 steps, 2 seeds (default: the quick grid: depths 3,10, 1,000 steps, 1 seed)");
  a->list_opts.push_back(c->add_option("--depths", a->depths, "Hidden layers, comma list, each 1..50 (e.g. 3,10)"));
  a->list_opts.push_back(
      c->add_option("--inits", a->inits,
                    "Initializations: normal (raw N(0,1)), small (Kaiming x 0.1), kaiming (gain 5/3), kaiming-nogain (gain 1)"));
  a->list_opts.push_back(c->add_option("--norms", a->norms, "Normalizations after each hidden Linear: none, batch, layer"));
  a->list_opts.push_back(
      c->add_option("--residual", a->residual, "Residual connections around hidden blocks 2..depth: off, on or off,on"));
  a->list_opts.push_back(c->add_option("--optimizers", a->optimizers, "sgd, adam or sgd,adam"));
  a->seeds_opt = c->add_option("--seeds", a->seeds, "Seeds per cell (default: 1 quick, 2 full)");
  a->steps_opt = c->add_option("--steps", a->steps, "Steps per cell (default: 1,000 quick, 4,000 full)");
  a->width_opt = c->add_option("--width", a->width, "Units per hidden layer (default 64)");
  a->sgd_opt = c->add_option("--sgd-lr", a->sgd_lr, "SGD learning rate, x0.1 for the last quarter (default 0.1)");
  a->adam_opt = c->add_option("--adam-lr", a->adam_lr, "Adam learning rate, x0.1 for the last quarter (default 0.003)");
  c->add_option("--jobs,-j", a->jobs, "Trainings at a time (default: one per core)")->check(number_in(a->jobs, 0, 256));
  c->add_option("-i,--input", a->input, "Word list (default: data/names.txt)");
  c->add_option("-o,--out", a->out_dir,
                "Folder for study.json, study.html, figures/ and runs/ (the finished cells, kept for a rerun)")
      ->capture_default_str();
  c->add_flag("--no-resume", a->no_resume, "Retrain every cell (default: keep cells finished in DIR/runs/ with the same config)");
  c->add_flag("--json", a->json,
              "Print study.json without per-cell configs and layer statistics on stdout (the table goes to stderr)");
  return [a] { return run_study_depth(*a); };
}

}  // namespace mm::cli
