// `makemore bench`: option parsing and printing; the measurements are the library's (bench.h):
// training steps per second of presets and config files on the lecture's data, and with --torch
// a PyTorch twin of each network (bench/torch/) timed in the same invocation, with achieved
// GFLOP/s against this core's FMA peak measured on the spot.
#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>

#include "commands.h"
#include "makemore/bench.h"
#include "makemore/data.h"
#include "makemore/layers.h"

namespace mm::cli {

namespace {
struct BenchArgs {
  std::vector<std::string> presets, configs;
  BenchOptions o;
  bool json = false;
};

void print_header(const BenchOptions& o, const BenchContext& ctx, FILE* log, bool table) {
  if (!ctx.torch_note.empty()) fmt::print(log, "note: {}\n", ctx.torch_note);
  fmt::print(log,
             "{} of {}; kernels {}; products via {}, the first Linear's token path {}; measured FMA peak {:.0f} GFLOP/s ({})\n",
             o.threads == 1 ? std::string("one core") : fmt::format("{} threads", o.threads), ctx.cpu, ctx.kernels, ctx.gemm,
             ctx.token_linear, ctx.peak_gflops, ctx.fma_isa);
  if (!table) return;
  fmt::print("{:<24} {:>8} {:>12} {:>9} {:>10} {:>8} {:>8}", "network", "steps", "steps/s", "us/step", "GFLOP/s", "% peak",
             "eval ms");
  if (ctx.with_torch()) fmt::print(" {:>12} {:>8}", "torch st/s", "speedup");
  fmt::print("\n");
}

void print_profile(const BenchResult& r, double peak) {
  const StepProfile& p = r.profile;
  fmt::print("  profile of {} ({} steps, wall time; total {:.0f} ns/step = {:.0f} steps/s):\n", r.name, r.steps, p.total_ns,
             1e9 / p.total_ns);
  std::map<std::string, double> by_kind;
  // The parts' column: as wide as its longest name; a block's layers indented below its row.
  auto label = [](const ProfileEntry& e) { return std::string(2 * static_cast<std::size_t>(e.depth), ' ') + e.what; };
  std::size_t width = 58;
  for (const auto& e : p.entries) width = std::max(width, label(e).size());
  for (const auto& e : p.entries) {
    fmt::print("    {:<{}} {:>8.0f} ns {:>6.1f}%\n", label(e), width, e.ns_per_step, 100 * e.ns_per_step / p.total_ns);
    if (!e.group) by_kind[e.kind] += e.ns_per_step;
  }
  if (const double mm_gflops = r.products_alone_gflops(); mm_gflops > 0)
    fmt::print("    matrix products alone: {:.1f} GFLOP/s = {:.1f}% of the measured peak\n", mm_gflops, 100 * mm_gflops / peak);
  fmt::print("    by kind:");
  for (const auto& [k, v] : by_kind) fmt::print(" {} {:.0f}%", k, 100 * v / p.total_ns);
  fmt::print("\n");
}

void print_row(const BenchResult& r, const BenchContext& ctx) {
  if (r.profiled) print_profile(r, ctx.peak_gflops);
  fmt::print("{:<24} {:>8} {:>12.0f} {:>9.2f} {:>10.1f} {:>7.1f}% {:>8.1f}", r.name, r.steps, r.steps_per_sec,
             1e6 / r.steps_per_sec, r.gflops(), 100 * r.gflops() / ctx.peak_gflops, r.eval_ms);
  if (ctx.with_torch()) {
    if (r.torch_steps_per_sec > 0)
      fmt::print(" {:>12.0f} {:>7.1f}x", r.torch_steps_per_sec, r.steps_per_sec / r.torch_steps_per_sec);
    else
      fmt::print("  ({})", r.torch_note);
  }
  fmt::print("\n");
  std::fflush(stdout);
}

int run_bench(BenchArgs a) {
  if (a.o.words.empty()) a.o.words = default_words_path();
  const Dataset data = Dataset::load(a.o.words);
  if (a.presets.empty() && a.configs.empty()) a.presets = {"lecture-kaiming", "lecture-batchnorm", "lecture-deep"};
  // Every name and file is checked before the table's header goes out.
  const std::vector<BenchEntry> entries = bench_entries(a.presets, a.configs);
  const BenchContext ctx = bench_setup(a.o);
  print_header(a.o, ctx, a.json ? stderr : stdout, !a.json);
  nlohmann::json rows = nlohmann::json::array();
  for (const BenchEntry& e : entries) {
    const BenchResult r = bench_network(e, data, a.o, ctx);
    rows.push_back(bench_row_json(r, ctx, ctx.with_torch()));
    if (!a.json) print_row(r, ctx);
  }
  if (a.json) {
    fmt::print("{}\n", bench_json(a.o, ctx, rows).dump());
    return 0;
  }
  fmt::print(
      "GFLOP/s and % peak count every Linear's three plain products (x W, x^T dout, dout W^T), the lecture's\n"
      "work per step{}\n",
      token_linear() == TokenLinear::Off
          ? "."
          : "; the first Linear's token path does that work with fewer multiply-adds\n"
            "(once per distinct (position, token) pair of the batch), so for it they are rates of equivalent work.");
  return 0;
}
}  // namespace

Runner add_bench(CLI::App& app) {
  auto a = std::make_shared<BenchArgs>();
  BenchOptions& o = a->o;
  auto* c = app.add_subcommand(
      "bench", "Training speed (steps/s, one core) of presets or config files, best of --repeat runs; --torch: beside PyTorch");
  c->add_option("--preset", a->presets,
                "Preset(s) to time (default, without --config: lecture-kaiming, lecture-batchnorm, lecture-deep)");
  c->add_option("--config", a->configs, "Config file(s) to time (any network; after the presets)");
  c->add_option("-i,--input", o.words, "Word list (default: data/names.txt)");
  c->add_option("--steps", o.steps, "Steps per timed run")->capture_default_str()->check(at_least(o.steps, 1));
  c->add_option("--seconds", o.seconds,
                "Time each run for about this long instead (at most --steps steps; PyTorch's runs too); 0: off")
      ->capture_default_str()
      ->check(number_in(o.seconds, 0.0, 3600.0));
  c->add_option("--repeat", o.repeat, "Timed runs per network; the best counts")
      ->capture_default_str()
      ->check(number_in(o.repeat, 1, 100));
  c->add_flag("--torch", o.torch,
              "Also time a PyTorch twin of each network (bench/torch/: the lecture's loops for lecture-*, config.py for any "
              "other; /usr/bin/python3, 1 thread), best of --repeat runs taking turns with ours");
  c->add_option("--torch-steps", o.torch_steps, "Steps of each PyTorch run")
      ->capture_default_str()
      ->check(at_least(o.torch_steps, 1));
  c->add_option("--threads", o.threads, "Cores one training may use (large products and the evaluation split over them)")
      ->capture_default_str()
      ->check(number_in(o.threads, 1, 256));
  c->add_flag("--profile", o.profile,
              "Also print where a step's time goes, part by part, the layers inside residual blocks too (--steps steps; run on a "
              "quiet machine)");
  c->add_flag("--json", a->json, "Print one JSON object with steps_per_sec per network");
  return [a] { return run_bench(*a); };
}

}  // namespace mm::cli
