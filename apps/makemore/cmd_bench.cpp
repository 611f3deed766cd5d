// `makemore bench`: training steps per second of presets on the lecture's data, and with
// --torch the lecture's own PyTorch loop (bench/torch/) timed in the same invocation, with
// achieved GFLOP/s against this core's FMA peak measured on the spot.
#include <fmt/format.h>

#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <regex>

#include "commands.h"
#include "makemore/data.h"
#include "makemore/gemm.h"
#include "makemore/parallel.h"
#include "makemore/perf.h"
#include "makemore/presets.h"
#include "makemore/train.h"

namespace mm::cli {

namespace {
struct BenchArgs {
  std::vector<std::string> presets;
  std::string input;
  int64_t steps = 20000;
  int64_t torch_steps = 5000;
  int repeat = 3;
  int threads = 1;
  bool json = false, torch = false, profile = false;
};

std::string torch_script_dir() {
  namespace fs = std::filesystem;
  if (fs::exists("bench/torch/lecture.py")) return "bench/torch";
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec)
    for (const fs::path& p : {exe.parent_path() / "../bench/torch", exe.parent_path() / "bench/torch"})
      if (fs::exists(p / "lecture.py")) return fs::weakly_canonical(p).string();
  return "";
}

std::string run_capture(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return out;
  std::array<char, 4096> buf{};
  while (fgets(buf.data(), buf.size(), p)) out += buf.data();
  pclose(p);
  return out;
}

// PyTorch's steps/s on the same network, one thread, with the lecture's loop; 0 when absent.
double torch_steps_per_sec(const std::string& dir, const std::string& preset, const std::string& words, int64_t steps,
                           std::string* why) {
  std::string cmd;
  if (preset == "lecture-deep")
    cmd = fmt::format("/usr/bin/python3 {}/deep.py --lean --no-sample --threads 1", dir);
  else if (preset.rfind("lecture-", 0) == 0)
    cmd =
        fmt::format("/usr/bin/python3 {}/lecture.py --variant {} --no-init-stats --no-lossi --threads 1", dir, preset.substr(8));
  else {
    *why = "no PyTorch twin for this preset";
    return 0;
  }
  cmd += fmt::format(" --steps {} --names '{}' 2>&1", steps, words);
  const std::string out = run_capture(cmd);
  std::smatch m;
  static const std::regex re("steps/s=([0-9.]+)");
  if (std::regex_search(out, m, re)) return std::stod(m[1]);
  *why = out.find("No module named") != std::string::npos
             ? "PyTorch is not installed (apt-get install python3-torch libopenblas0-pthread)"
             : "the PyTorch run failed";
  return 0;
}

int run_bench(const BenchArgs& a) {
  const std::string input = a.input.empty() ? default_words_path() : a.input;
  const Dataset data = Dataset::load(input);
  const Vocab& vocab = data.vocab();
  std::vector<std::string> names = a.presets;
  if (names.empty()) names = {"lecture-kaiming", "lecture-batchnorm", "lecture-deep"};
  std::vector<Config> cfgs;  // all names checked before the table header goes out
  for (const auto& name : names) cfgs.push_back(load_preset(name));
  std::string torch_dir, torch_note;
  if (a.torch) {
    torch_dir = torch_script_dir();
    if (torch_dir.empty())
      torch_note = "bench/torch/ not found; run from the source tree";
    else if (run_capture("/usr/bin/python3 -c 'import torch; print(\"ok\")' 2>&1").find("ok") != 0)
      torch_note = "PyTorch is not installed (apt-get install python3-torch libopenblas0-pthread); timing makemore.cpp alone";
  }
  set_threads(a.threads);
  const double peak = measure_fma_peak_gflops(0.3);
  FILE* log = a.json ? stderr : stdout;
  if (!torch_note.empty()) fmt::print(log, "note: {}\n", torch_note);
  const std::string cpu = cpu_description();
  fmt::print(log,
             "{} of {}; kernels {}; products via {}, the first Linear's token path {}; measured FMA peak {:.0f} GFLOP/s ({})\n",
             a.threads == 1 ? std::string("one core") : fmt::format("{} threads", a.threads), cpu, kernel_set(),
             gemm_backend_name(gemm_backend()), token_linear_name(token_linear()), peak, fma_vector_isa());
  nlohmann::json results = nlohmann::json::array();
  const bool with_torch = a.torch && torch_note.empty();
  if (!a.json) {
    fmt::print("{:<20} {:>8} {:>12} {:>9} {:>10} {:>8} {:>8}", "preset", "steps", "steps/s", "us/step", "GFLOP/s", "% peak",
               "eval ms");
    if (with_torch) fmt::print(" {:>12} {:>8}", "torch st/s", "speedup");
    fmt::print("\n");
  }
  for (std::size_t pi = 0; pi < names.size(); ++pi) {
    const std::string& name = names[pi];
    Config cfg = cfgs[pi];
    cfg.steps = a.steps;
    const Splits splits = data.split(cfg.block_size, cfg.split_seed);
    double best = 0, flops = 0, eval_ms = 1e300, ts = 0;
    std::string why;
    // Best of N, ours and PyTorch's runs taking turns: the machine is shared and noisy, and a
    // slow minute should hit both sides of the ratio, not one.
    for (int r = 0; r < a.repeat; ++r) {
      Model model(cfg, vocab.size());
      TorchGenerator gen(cfg.seed);
      model.init(gen, splits.train);
      Trainer t(model, cfg, splits.train, gen);
      const TrainStats st = t.run();
      best = std::max(best, st.steps_per_sec);
      flops = step_matmul_flops(model, cfg.batch_size);
      // The whole training split in eval mode, as `train` does at the end.
      const auto e0 = std::chrono::steady_clock::now();
      model.evaluate(splits.train);
      eval_ms = std::min(eval_ms, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - e0).count());
      if (with_torch && (r == 0 || ts > 0)) ts = std::max(ts, torch_steps_per_sec(torch_dir, name, input, a.torch_steps, &why));
    }
    const double gflops = flops * best / 1e9;
    nlohmann::json row{{"preset", name},
                       {"steps", a.steps},
                       {"steps_per_sec", best},
                       {"us_per_step", 1e6 / best},
                       {"matmul_flops_per_step", flops},
                       {"gflops", gflops},
                       {"peak_gflops", peak},
                       {"percent_of_peak", 100 * gflops / peak},
                       {"eval_train_split_ms", eval_ms},
                       {"eval_examples", splits.train.size()}};
    if (with_torch) {
      row["torch_steps_per_sec"] = ts > 0 ? nlohmann::json(ts) : nlohmann::json(nullptr);
      if (ts > 0)
        row["speedup_vs_torch"] = best / ts;
      else
        row["torch_note"] = why;
    }
    if (a.profile) {
      Model model(cfg, vocab.size());
      TorchGenerator gen(cfg.seed);
      model.init(gen);
      const StepProfile prof = profile_steps(model, cfg, splits.train, a.steps);
      nlohmann::json parts = nlohmann::json::array();
      std::map<std::string, double> by_kind;
      for (const auto& e : prof.entries) {
        parts.push_back({{"part", e.what}, {"kind", e.kind}, {"ns_per_step", e.ns_per_step}});
        by_kind[e.kind] += e.ns_per_step;
      }
      // The products alone: their FLOPs over the time spent in the Linear layers.
      const double mm_ns = by_kind["matmul"];
      const double mm_gflops = mm_ns > 0 ? flops / mm_ns : 0;
      row["profile"] = {{"total_ns_per_step", prof.total_ns},
                        {"parts", parts},
                        {"by_kind", by_kind},
                        {"matmul_gflops", mm_gflops},
                        {"matmul_percent_of_peak", 100 * mm_gflops / peak}};
      if (!a.json) {
        fmt::print("  profile of {} ({} steps, wall time; total {:.0f} ns/step = {:.0f} steps/s):\n", name, a.steps,
                   prof.total_ns, 1e9 / prof.total_ns);
        for (const auto& e : prof.entries)
          fmt::print("    {:<58} {:>8.0f} ns {:>6.1f}%\n", e.what, e.ns_per_step, 100 * e.ns_per_step / prof.total_ns);
        fmt::print("    matrix products alone: {:.1f} GFLOP/s = {:.1f}% of the measured peak\n", mm_gflops,
                   100 * mm_gflops / peak);
        fmt::print("    by kind:");
        for (const auto& [k, v] : by_kind) fmt::print(" {} {:.0f}%", k, 100 * v / prof.total_ns);
        fmt::print("\n");
      }
    }
    results.push_back(row);
    if (!a.json) {
      fmt::print("{:<20} {:>8} {:>12.0f} {:>9.2f} {:>10.1f} {:>7.1f}% {:>8.1f}", name, a.steps, best, 1e6 / best, gflops,
                 100 * gflops / peak, eval_ms);
      if (with_torch) {
        if (ts > 0)
          fmt::print(" {:>12.0f} {:>7.1f}x", ts, best / ts);
        else
          fmt::print("  ({})", why);
      }
      fmt::print("\n");
    }
  }
  if (!a.json)
    fmt::print(
        "GFLOP/s and % peak count every Linear's three plain products (x W, x^T dout, dout W^T), the lecture's\n"
        "work per step{}\n",
        token_linear() == TokenLinear::Off
            ? "."
            : "; the first Linear's token path does that work with fewer multiply-adds\n"
              "(once per distinct (position, token) pair of the batch), so for it they are rates of equivalent work.");
  if (a.json)
    fmt::print("{}\n", nlohmann::json{{"threads", a.threads},
                                      {"cpu", cpu},
                                      {"kernels", kernel_set()},
                                      {"gemm", gemm_backend_name(gemm_backend())},
                                      {"token_linear", token_linear_name(token_linear())},
                                      {"peak_gflops", peak},
                                      {"torch", with_torch},
                                      {"results", results}}
                           .dump());
  return 0;
}
}  // namespace

Runner add_bench(CLI::App& app) {
  auto a = std::make_shared<BenchArgs>();
  auto* c = app.add_subcommand("bench",
                               "Training speed (steps/s, one core) of presets, best of --repeat runs; --torch: beside PyTorch");
  c->add_option("--preset", a->presets, "Preset(s) to time (default: lecture-kaiming, lecture-batchnorm, lecture-deep)");
  c->add_option("-i,--input", a->input, "Word list (default: data/names.txt)");
  c->add_option("--steps", a->steps, "Steps per timed run")->capture_default_str()->check(at_least(a->steps, 1));
  c->add_option("--repeat", a->repeat, "Timed runs per preset; the best counts")
      ->capture_default_str()
      ->check(number_in(a->repeat, 1, 100));
  c->add_flag("--torch", a->torch,
              "Also time the lecture's PyTorch loop (bench/torch/, /usr/bin/python3, 1 thread), best of --repeat runs taking "
              "turns with ours");
  c->add_option("--torch-steps", a->torch_steps, "Steps of each PyTorch run")
      ->capture_default_str()
      ->check(at_least(a->torch_steps, 1));
  c->add_option("--threads", a->threads, "Cores one training may use (large products and the evaluation split over them)")
      ->capture_default_str()
      ->check(number_in(a->threads, 1, 256));
  c->add_flag("--profile", a->profile,
              "Also print where a step's time goes, part by part (--steps steps; run on a quiet machine)");
  c->add_flag("--json", a->json, "Print one JSON object with steps_per_sec per preset");
  return [a] { return run_bench(*a); };
}

}  // namespace mm::cli
