// `makemore bench` as a library: the training speed of networks (presets or config files) on a
// word list, best of several runs, with the achieved GFLOP/s of the matrix products against this
// core's FMA peak measured on the spot, and optionally a PyTorch twin of each network
// (bench/torch/) timed in the same invocation, its runs taking turns with ours. The CLI
// (apps/makemore/cmd_bench.cpp) parses options and prints what these return.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "makemore/config.h"
#include "makemore/data.h"
#include "makemore/perf.h"

namespace mm {

// One network to time: a preset (name = the preset's) or a config file (name = its "name",
// file = the path).
struct BenchEntry {
  std::string name;
  std::string file;  // empty for a preset
  Config cfg;
};
// Presets by name, then config files by path, in that order; an unknown preset or a bad file
// is an mm::Error naming it (before anything is timed).
std::vector<BenchEntry> bench_entries(const std::vector<std::string>& presets, const std::vector<std::string>& files);

struct BenchOptions {
  std::string words;           // the word list's path (the PyTorch twins read it too)
  int64_t steps = 20000;       // steps per timed run
  double seconds = 0;          // > 0: each timed run stops at --steps or after about this long
  int64_t torch_steps = 5000;  // steps of each PyTorch run (also capped by `seconds`)
  int repeat = 3;              // timed runs per network; the best counts
  int threads = 1;
  bool torch = false, profile = false;
};

// What a run of the bench shares: the machine and the paths it found.
struct BenchContext {
  std::string cpu, kernels, gemm, token_linear, fma_isa;
  double peak_gflops = 0;
  std::string torch_dir;   // bench/torch/ when --torch found it and PyTorch imports
  std::string torch_note;  // why --torch is off, when it was asked for
  bool with_torch() const { return !torch_dir.empty() && torch_note.empty(); }
};
// Sets the thread count, measures the peak, looks for bench/torch/ and PyTorch.
BenchContext bench_setup(const BenchOptions& o);

struct BenchResult {
  std::string name, file;
  int64_t steps = 0;  // steps of each timed run
  double steps_per_sec = 0, flops_per_step = 0, eval_ms = 0;
  std::size_t eval_examples = 0;
  double torch_steps_per_sec = 0;  // 0: not measured (torch_note says why)
  std::string torch_note;
  bool profiled = false;
  StepProfile profile;
  double gflops() const { return flops_per_step * steps_per_sec / 1e9; }
  // The profile's products alone: every Linear's FLOPs over the time of the Linear rows (those
  // inside blocks included). 0 when not profiled.
  double products_alone_gflops() const;
};
BenchResult bench_network(const BenchEntry& e, const Dataset& data, const BenchOptions& o, const BenchContext& ctx);

// The JSON `bench --json` prints for one network (with its profile's parts and kinds), and the
// whole object around the rows.
nlohmann::json bench_row_json(const BenchResult& r, const BenchContext& ctx, bool with_torch);
nlohmann::json bench_json(const BenchOptions& o, const BenchContext& ctx, const nlohmann::json& rows);

// The PyTorch twin's steps/s for a network (the lecture's own loops in bench/torch/ for the
// lecture-* presets, bench/torch/config.py for every other network); 0 and *why when it failed.
double torch_twin_steps_per_sec(const BenchEntry& e, const std::string& torch_dir, const std::string& words, int64_t steps,
                                double max_seconds, std::string* why);

}  // namespace mm
