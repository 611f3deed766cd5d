// `makemore bench`: training steps per second of presets on the lecture's data.
#include <fmt/format.h>

#include <memory>

#include "commands.h"
#include "makemore/data.h"
#include "makemore/presets.h"
#include "makemore/train.h"

namespace mm::cli {

namespace {
struct BenchArgs {
  std::vector<std::string> presets;
  std::string input;
  int64_t steps = 20000;
  int repeat = 3;
  bool json = false;
};

int run_bench(const BenchArgs& a) {
  const std::string input = a.input.empty() ? default_words_path() : a.input;
  const WordList wl = load_words(input);
  const Vocab vocab = Vocab::from_words(wl.words);
  std::vector<std::string> names = a.presets;
  if (names.empty()) names = {"lecture-kaiming", "lecture-batchnorm", "lecture-deep"};
  nlohmann::json results = nlohmann::json::array();
  if (!a.json) fmt::print("{:<22} {:>8} {:>12} {:>10}\n", "preset", "steps", "steps/s", "us/step");
  for (const auto& name : names) {
    Config cfg = load_preset(name);
    cfg.steps = a.steps;
    const Splits splits = make_splits(wl.words, vocab, cfg.block_size, cfg.split_seed);
    double best = 0;
    for (int r = 0; r < a.repeat; ++r) {  // best of N: the machine is shared and noisy
      Model model(cfg, vocab.size());
      TorchGenerator gen(cfg.seed);
      model.init(gen);
      Trainer t(model, cfg, splits.train, gen);
      const TrainStats st = t.run();
      best = std::max(best, st.steps_per_sec);
    }
    results.push_back({{"preset", name}, {"steps", a.steps}, {"steps_per_sec", best}, {"us_per_step", 1e6 / best}});
    if (!a.json) fmt::print("{:<22} {:>8} {:>12.0f} {:>10.2f}\n", name, a.steps, best, 1e6 / best);
  }
  if (a.json) fmt::print("{}\n", nlohmann::json{{"threads", 1}, {"results", results}}.dump());
  return 0;
}
}  // namespace

Runner add_bench(CLI::App& app) {
  auto a = std::make_shared<BenchArgs>();
  auto* c = app.add_subcommand("bench", "Training speed (steps/s, one core) of presets, best of --repeat runs");
  c->add_option("--preset", a->presets, "Preset(s) to time (default: lecture-kaiming, lecture-batchnorm, lecture-deep)");
  c->add_option("-i,--input", a->input, "Word list (default: data/names.txt)");
  c->add_option("--steps", a->steps, "Steps per timed run")->capture_default_str()->check(CLI::PositiveNumber);
  c->add_option("--repeat", a->repeat, "Timed runs per preset; the best counts")->capture_default_str()->check(CLI::Range(1, 100));
  c->add_flag("--json", a->json, "Print one JSON object with steps_per_sec per preset");
  return [a] { return run_bench(*a); };
}

}  // namespace mm::cli
