// `makemore inspect`: the lecture's activation / gradient / grad:data tables, histograms and
// the doctor's findings for a network at initialization, after N training steps, or from a
// saved run. The measuring lives in the library (diag.h); this file picks the network.
#include <fmt/format.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string_view>

#include "commands.h"
#include "makemore/data.h"
#include "makemore/diag.h"
#include "makemore/error.h"
#include "makemore/presets.h"
#include "makemore/run.h"
#include "makemore/train.h"

namespace mm::cli {

namespace {

struct InspectArgs {
  std::string input, preset, config_path, run_dir;
  int64_t steps = 0;
  int batch_size = -1;
  bool json = false;
};

std::unique_ptr<Model> build_model(const Config& cfg, int vocab_size, const std::string& source) {
  try {
    return std::make_unique<Model>(cfg, vocab_size);
  } catch (const std::invalid_argument& e) {
    // Errors that already name their field (a residual branch's width) keep it.
    const bool named = std::string_view(e.what()).starts_with("model.");
    throw Error(fmt::format("{}: {}{}", source, named ? "" : "model.layers: ", e.what()));
  }
}

// Preset or config: the library trains `steps` steps and measures the next one.
Diagnosis inspect_fresh(const InspectArgs& a, Config cfg, const std::string& input) {
  if (a.batch_size > 0) cfg.batch_size = a.batch_size;
  cfg = parse_config(cfg.to_json(), "command line");
  const Dataset data = Dataset::load(input);
  const Splits splits = data.split(cfg.block_size, cfg.split_seed);
  if (splits.train.size() < 2)
    throw Error(fmt::format("{}: too few items for a training split ({} items); use at least 10", input, data.size()));
  build_model(cfg, data.vocab().size(), a.config_path.empty() ? "preset " + cfg.name : a.config_path);  // names a bad config
  return inspect_training(cfg, splits, data.vocab().size(), a.steps);
}

int run_inspect(const InspectArgs& a) {
  const std::string input = a.input.empty() ? default_words_path() : a.input;
  Diagnosis r;
  if (!a.run_dir.empty()) {
    if (a.steps > 0)
      throw Error("--steps trains a fresh network; it does not apply to a saved run (-o DIR); use --preset or --config");
    Run run = Run::open(a.run_dir);
    r = inspect_run(run, a.input, a.batch_size);
  } else {
    const Config cfg =
        a.config_path.empty() ? load_preset(a.preset.empty() ? kDefaultPreset : a.preset) : load_config_file(a.config_path);
    r = inspect_fresh(a, cfg, input);
  }
  if (a.json) {
    fmt::print("{}\n", diagnosis_json(r).dump());
  } else {
    fmt::print("{}", format_diagnosis(r));
  }
  return 0;
}

}  // namespace

Runner add_inspect(CLI::App& app) {
  auto a = std::make_shared<InspectArgs>();
  auto* c = app.add_subcommand(
      "inspect", "Activation, gradient and update statistics of a network, the lecture's tables and histograms, and what to fix");
  auto* p = c->add_option("--preset", a->preset, "Built-in network at initialization (default lecture-batchnorm)");
  auto* f = c->add_option("--config", a->config_path, "Config file, at initialization");
  auto* o = c->add_option("-o,--out", a->run_dir, "A saved run folder (from `makemore train -o DIR`)");
  p->excludes(f);
  p->excludes(o);
  f->excludes(o);
  c->add_option("--steps", a->steps, "Train this many steps first, then measure the next minibatch")
      ->capture_default_str()
      ->check(at_least(a->steps, 0));
  c->add_option("-i,--input", a->input, "Word list (default: data/names.txt; for -o, the run's words.txt)");
  c->add_option("--batch-size", a->batch_size, "Minibatch size to measure (default: the config's)")
      ->check(number_in(a->batch_size, 2, 1 << 20));
  c->add_flag("--json", a->json, "Print one JSON object on stdout instead of the tables");
  return [a] { return run_inspect(*a); };
}

}  // namespace mm::cli
