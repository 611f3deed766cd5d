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

// A saved run: measure one minibatch (drawn from the run's seed) in train mode, no update. The
// initial loss comes from re-initializing the same config, which redraws the same weights.
Diagnosis inspect_run(const InspectArgs& a, const std::string& input_arg) {
  Run run = Run::open(a.run_dir);
  Config cfg = run.config();
  if (a.batch_size > 0) cfg.batch_size = a.batch_size;
  if (cfg.batch_size < 2) throw Error("--batch-size: use at least 2 (BatchNorm needs two rows)");
  const std::string input = input_arg.empty() ? a.run_dir + "/" + kWordsFile : input_arg;
  const Dataset data = Dataset::load(input, &run.vocab());
  Splits splits;
  try {
    splits = data.split(cfg.block_size, cfg.split_seed);
  } catch (const Error& e) {  // a character the run never saw: name the file it came from
    throw Error(fmt::format("{}: {}; pass the run's own words (the default) or a list in its characters", input, e.what()));
  }
  if (splits.train.size() < 2) throw Error(fmt::format("{}: too few items for a training split", input));
  Model& model = run.model();

  const auto B = static_cast<std::size_t>(cfg.batch_size), T = static_cast<std::size_t>(cfg.block_size);
  auto draw = [&](TorchGenerator& gen, std::vector<int32_t>& xb, std::vector<int32_t>& yb) {
    std::vector<int64_t> ix(B);
    gen.randint(0, static_cast<int64_t>(splits.train.size()), ix.data(), B);
    xb.resize(B * T);
    yb.resize(B);
    for (std::size_t b = 0; b < B; ++b) {
      const auto r = static_cast<std::size_t>(ix[b]);
      for (std::size_t t = 0; t < T; ++t) xb[b * T + t] = splits.train.x[r * T + t];
      yb[b] = splits.train.y[r];
    }
  };

  Diagnosis r;
  r.name = cfg.name;
  r.vocab_size = run.vocab().size();
  r.expected_loss = std::log(static_cast<double>(r.vocab_size));
  {
    auto fresh = build_model(cfg, r.vocab_size, a.run_dir + "/" + kConfigFile);
    TorchGenerator gen(cfg.seed);
    fresh->init(gen, splits.train);
    std::vector<int32_t> xb, yb;
    draw(gen, xb, yb);
    fresh->forward(xb.data(), static_cast<int>(B), ForwardContext(Mode::Train, &gen));
    r.initial_loss = fresh->loss(yb.data());
  }

  DiagOptions opt;
  opt.every = 0;
  opt.sample_from = &splits.train;
  opt.config = &cfg;
  DiagObserver obs(opt);
  TorchGenerator gen(cfg.seed ^ 0x5eedULL);  // a minibatch other than the first of training
  std::vector<int32_t> xb, yb;
  draw(gen, xb, yb);
  model.forward(xb.data(), static_cast<int>(B), ForwardContext(Mode::Train, &gen));
  const float loss = model.loss(yb.data());
  obs.capture_forward(model, run.step(), loss);
  model.backward();
  obs.capture_backward(model, run.step());
  obs.capture_update(model, run.step(), cfg.lr_at(run.step()), false);
  r.snapshot = *obs.last();
  r.steps_trained = run.step();
  r.findings = diagnose(r, model);
  return r;
}

int run_inspect(const InspectArgs& a) {
  const std::string input = a.input.empty() ? default_words_path() : a.input;
  Diagnosis r;
  if (!a.run_dir.empty()) {
    if (a.steps > 0)
      throw Error("--steps trains a fresh network; it does not apply to a saved run (-o DIR); use --preset or --config");
    r = inspect_run(a, a.input);
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
