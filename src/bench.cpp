// `makemore bench`'s measurements: see bench.h.
#include "makemore/bench.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <regex>

#include "makemore/error.h"
#include "makemore/gemm.h"
#include "makemore/layers.h"
#include "makemore/model.h"
#include "makemore/parallel.h"
#include "makemore/presets.h"
#include "makemore/train.h"

namespace mm {

namespace fs = std::filesystem;
using json = nlohmann::json;

std::vector<BenchEntry> bench_entries(const std::vector<std::string>& presets, const std::vector<std::string>& files) {
  std::vector<BenchEntry> out;
  for (const auto& name : presets) out.push_back({name, "", load_preset(name)});
  for (const auto& file : files) {
    Config cfg = load_config_file(file);
    std::string name = cfg.name;
    if (name.empty() || name == "custom") name = fs::path(file).stem().string();
    out.push_back({name, file, std::move(cfg)});
  }
  return out;
}

namespace {

std::string find_torch_dir() {
  if (fs::exists("bench/torch/config.py")) return "bench/torch";
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec)
    for (const fs::path& p : {exe.parent_path() / "../bench/torch", exe.parent_path() / "bench/torch"})
      if (fs::exists(p / "config.py")) return fs::weakly_canonical(p).string();
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

// A single-quoted shell word.
std::string shell_word(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// The network's config as a file config.py reads (plain JSON, every field written out).
struct TempConfig {
  std::string path;
  explicit TempConfig(const Config& cfg) {
    std::string tmpl = (fs::temp_directory_path() / "makemore-bench-XXXXXX.json").string();
    const int fd = mkstemps(tmpl.data(), 5);
    if (fd < 0) return;
    close(fd);
    path = tmpl;
    std::ofstream(path) << cfg.to_json().dump();
  }
  ~TempConfig() {
    std::error_code ec;
    if (!path.empty()) fs::remove(path, ec);
  }
  TempConfig(const TempConfig&) = delete;
  TempConfig& operator=(const TempConfig&) = delete;
};

// Steps of each timed run: --steps, or with --seconds as many as fit in about that long, from
// the speed of a short untimed probe.
int64_t timed_steps(const BenchEntry& e, const Splits& splits, int vocab, const BenchOptions& o) {
  if (o.seconds <= 0) return o.steps;
  Config cfg = e.cfg;
  cfg.steps = std::min<int64_t>(o.steps, 50);
  Model model(cfg, vocab);
  TorchGenerator gen(cfg.seed);
  model.init(gen, splits.train);
  Trainer t(model, cfg, splits.train, gen);
  const TrainStats st = t.run();
  const double want = std::floor(o.seconds * std::max(st.steps_per_sec, 1.0));
  return std::clamp<int64_t>(static_cast<int64_t>(want), cfg.steps, o.steps);
}

StepProfile profile_network(const BenchEntry& e, const Splits& splits, int vocab, int64_t steps) {
  Config cfg = e.cfg;
  cfg.steps = steps;
  Model model(cfg, vocab);
  TorchGenerator gen(cfg.seed);
  model.init(gen);
  return profile_steps(model, cfg, splits.train, steps);
}

}  // namespace

BenchContext bench_setup(const BenchOptions& o) {
  BenchContext c;
  if (o.torch) {
    c.torch_dir = find_torch_dir();
    if (c.torch_dir.empty())
      c.torch_note = "bench/torch/ not found; run from the source tree";
    else if (run_capture("/usr/bin/python3 -c 'import torch; print(\"ok\")' 2>&1").find("ok") != 0)
      c.torch_note = "PyTorch is not installed (apt-get install python3-torch libopenblas0-pthread); timing makemore.cpp alone";
  }
  set_threads(o.threads);
  c.peak_gflops = measure_fma_peak_gflops(0.3);
  c.cpu = cpu_description();
  c.kernels = kernel_set();
  c.gemm = gemm_backend_name(gemm_backend());
  c.token_linear = token_linear_name(token_linear());
  c.fma_isa = fma_vector_isa();
  return c;
}

double torch_twin_steps_per_sec(const BenchEntry& e, const std::string& torch_dir, const std::string& words, int64_t steps,
                                double max_seconds, std::string* why) {
  // The lecture's networks run the lecture's own loops; every other network the config's twin.
  const bool preset = e.file.empty();
  // One thread: OpenBLAS's own threads (which torch.set_num_threads leaves alone) would spin
  // against ours on a shared machine.
  const char* python = "OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 /usr/bin/python3";
  std::string cmd;
  std::unique_ptr<TempConfig> tmp;
  if (preset && e.name == "lecture-deep") {
    cmd = fmt::format("{} {}/deep.py --lean --no-sample", python, shell_word(torch_dir));
  } else if (preset && e.name.rfind("lecture-", 0) == 0) {
    cmd = fmt::format("{} {}/lecture.py --variant {} --no-init-stats --no-lossi", python, shell_word(torch_dir),
                      shell_word(e.name.substr(8)));
  } else {
    tmp = std::make_unique<TempConfig>(e.cfg);
    if (tmp->path.empty()) {
      *why = "cannot write a temporary config file";
      return 0;
    }
    cmd = fmt::format("{} {}/config.py --config {}", python, shell_word(torch_dir), shell_word(tmp->path));
  }
  cmd += fmt::format(" --threads 1 --steps {} --names {}", steps, shell_word(words));
  if (max_seconds > 0) cmd += fmt::format(" --max-seconds {}", max_seconds);
  const std::string out = run_capture(cmd + " 2>&1");
  std::smatch m;
  static const std::regex re("steps/s=([0-9.]+)");
  if (std::regex_search(out, m, re)) return std::stod(m[1]);
  static const std::regex twin("config.py: (.*) has no PyTorch twin");
  if (std::regex_search(out, m, twin))
    *why = m[1].str() + " has no PyTorch twin";
  else
    *why = out.find("No module named") != std::string::npos
               ? "PyTorch is not installed (apt-get install python3-torch libopenblas0-pthread)"
               : "the PyTorch run failed";
  return 0;
}

BenchResult bench_network(const BenchEntry& e, const Dataset& data, const BenchOptions& o, const BenchContext& ctx) {
  const int vocab = data.vocab().size();
  const Splits splits = data.split(e.cfg.block_size, e.cfg.split_seed);
  BenchResult r;
  r.name = e.name;
  r.file = e.file;
  r.steps = timed_steps(e, splits, vocab, o);
  r.eval_ms = 1e300;
  r.eval_examples = splits.train.size();
  Config cfg = e.cfg;
  cfg.steps = r.steps;
  // Best of N, ours and PyTorch's runs taking turns: the machine is shared and noisy, and a
  // slow minute should hit both sides of the ratio, not one.
  for (int rep = 0; rep < o.repeat; ++rep) {
    Model model(cfg, vocab);
    TorchGenerator gen(cfg.seed);
    model.init(gen, splits.train);
    Trainer t(model, cfg, splits.train, gen);
    const TrainStats st = t.run();
    r.steps_per_sec = std::max(r.steps_per_sec, st.steps_per_sec);
    r.flops_per_step = step_matmul_flops(model, cfg.batch_size);
    // The whole training split in eval mode, as `train` does at the end.
    const auto e0 = std::chrono::steady_clock::now();
    model.evaluate(splits.train);
    r.eval_ms = std::min(r.eval_ms, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - e0).count());
    if (ctx.with_torch() && (rep == 0 || r.torch_steps_per_sec > 0))
      r.torch_steps_per_sec = std::max(
          r.torch_steps_per_sec, torch_twin_steps_per_sec(e, ctx.torch_dir, o.words, o.torch_steps, o.seconds, &r.torch_note));
  }
  if (r.torch_steps_per_sec > 0) r.torch_note.clear();
  if (o.profile) {
    r.profiled = true;
    r.profile = profile_network(e, splits, vocab, r.steps);
  }
  return r;
}

json bench_row_json(const BenchResult& r, const BenchContext& ctx, bool with_torch) {
  const double peak = ctx.peak_gflops;
  json row{{"preset", r.name},
           {"steps", r.steps},
           {"steps_per_sec", r.steps_per_sec},
           {"us_per_step", 1e6 / r.steps_per_sec},
           {"matmul_flops_per_step", r.flops_per_step},
           {"gflops", r.gflops()},
           {"peak_gflops", peak},
           {"percent_of_peak", 100 * r.gflops() / peak},
           {"eval_train_split_ms", r.eval_ms},
           {"eval_examples", r.eval_examples}};
  if (!r.file.empty()) row["config"] = r.file;
  if (with_torch) {
    row["torch_steps_per_sec"] = r.torch_steps_per_sec > 0 ? json(r.torch_steps_per_sec) : json(nullptr);
    if (r.torch_steps_per_sec > 0)
      row["speedup_vs_torch"] = r.steps_per_sec / r.torch_steps_per_sec;
    else
      row["torch_note"] = r.torch_note;
  }
  if (r.profiled) {
    json parts = json::array();
    std::map<std::string, double> by_kind;
    for (const auto& p : r.profile.entries) {
      parts.push_back(
          {{"part", p.what}, {"kind", p.kind}, {"ns_per_step", p.ns_per_step}, {"depth", p.depth}, {"group", p.group}});
      if (!p.group) by_kind[p.kind] += p.ns_per_step;
    }
    const double mm_gflops = r.products_alone_gflops();
    row["profile"] = {{"total_ns_per_step", r.profile.total_ns},
                      {"parts", parts},
                      {"by_kind", by_kind},
                      {"matmul_gflops", mm_gflops > 0 ? json(mm_gflops) : json(nullptr)},
                      {"matmul_percent_of_peak", mm_gflops > 0 ? json(100 * mm_gflops / peak) : json(nullptr)}};
  }
  return row;
}

double BenchResult::products_alone_gflops() const {
  double matmul_ns = 0;
  for (const auto& p : profile.entries)
    if (!p.group && p.kind == "matmul") matmul_ns += p.ns_per_step;
  return profiled && matmul_ns > 0 ? flops_per_step / matmul_ns : 0;
}

json bench_json(const BenchOptions& o, const BenchContext& ctx, const json& rows) {
  return {{"threads", o.threads},
          {"cpu", ctx.cpu},
          {"kernels", ctx.kernels},
          {"gemm", ctx.gemm},
          {"token_linear", ctx.token_linear},
          {"peak_gflops", ctx.peak_gflops},
          {"torch", ctx.with_torch()},
          {"seconds", o.seconds},
          {"results", rows}};
}

}  // namespace mm
