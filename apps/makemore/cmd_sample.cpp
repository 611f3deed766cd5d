// `makemore sample` and `makemore eval`: use a finished run folder, opened through run.h's Run.
#include <fmt/format.h>

#include <filesystem>
#include <memory>
#include <unordered_set>

#include "commands.h"
#include "makemore/data.h"
#include "makemore/error.h"
#include "makemore/run.h"
#include "makemore/sample.h"
#include "makemore/train.h"

namespace mm::cli {

namespace {

struct SampleArgs {
  std::string dir = "out";
  int n = 20;
  int64_t seed = -1;
  double temperature = 1.0;
  int top_k = 0;
  bool json = false;
};

int run_sample(const SampleArgs& a) {
  Run run = Run::open(a.dir);
  const Splits& splits = run.splits();
  std::unordered_set<std::u32string> train(splits.train_words.begin(), splits.train_words.end());
  SampleOptions opt;
  opt.count = a.n;
  opt.temperature = a.temperature;
  opt.top_k = a.top_k;
  const auto words = run.sample(opt, a.seed >= 0 ? std::optional<uint64_t>(a.seed) : std::nullopt);
  int fresh = 0, cut = 0;
  nlohmann::json items = nlohmann::json::array();
  for (const auto& w : words) {
    const bool is_new = !train.count(w);
    // A sample as long as the limit never drew the boundary token: it was cut there.
    const bool was_cut = static_cast<int>(w.size()) >= opt.max_length;
    fresh += is_new;
    cut += was_cut;
    items.push_back({{"text", to_utf8(w)}, {"new", is_new}, {"cut", was_cut}});
    if (!a.json) fmt::print("{}\n", to_utf8(w));
  }
  if (a.json) {
    fmt::print("{}\n", nlohmann::json{{"samples", items}, {"count", words.size()}, {"new", fresh}, {"cut", cut}}.dump());
  } else {
    fmt::print(stderr, "{} of {} samples are new (not in the training split)\n", fresh, words.size());
    if (cut)
      fmt::print(stderr, "makemore: note: {} sample(s) reached {} characters without ending and were cut there\n", cut,
                 opt.max_length);
  }
  return 0;
}

struct EvalArgs {
  std::string dir = "out";
  bool json = false, calibrate = false;
};

int run_eval(const EvalArgs& a) {
  Run run = Run::open(a.dir);
  const bool calibrate = a.calibrate && run.model().has_running_stats();
  if (a.calibrate && !calibrate)
    fmt::print(stderr, "makemore: note: --calibrate: {} has no BatchNorm layer; nothing to calibrate\n", a.dir);
  const SplitLosses l = run.evaluate(calibrate);
  const Splits& splits = run.splits();
  if (a.json) {
    fmt::print(
        "{}\n",
        nlohmann::json{{"train_loss", l.train},
                       {"val_loss", l.val},
                       {"test_loss", l.test},
                       {"step", run.step()},
                       {"calibrated", calibrate},
                       {"examples", {{"train", splits.train.size()}, {"val", splits.val.size()}, {"test", splits.test.size()}}}}
            .dump());
  } else {
    fmt::print("train {:.4f}\nval {:.4f}\ntest {:.4f}\n", l.train, l.val, l.test);
  }
  return 0;
}

}  // namespace

Runner add_sample(CLI::App& app) {
  auto a = std::make_shared<SampleArgs>();
  auto* c = app.add_subcommand("sample", "Sample items from a trained run");
  c->add_option("-o,--out", a->dir, "Run folder")->capture_default_str();
  c->add_option("-n,--num", a->n, "How many items")->capture_default_str()->check(number_in(a->n, 1, 1000000));
  c->add_option("--seed", a->seed, "Sampling seed (default: the run's seed + 10, as the lecture)")->check(at_least(a->seed, 0));
  c->add_option("--temperature", a->temperature, "Divide the logits by T (> 0)")
      ->capture_default_str()
      ->check(number_in(a->temperature, 1e-6, 1e6));
  c->add_option("--top-k", a->top_k, "Sample only from the K most likely tokens (0 = all)")->check(at_least(a->top_k, 0));
  c->add_flag("--json", a->json, "Print one JSON object");
  return [a] { return run_sample(*a); };
}

Runner add_eval(CLI::App& app) {
  auto a = std::make_shared<EvalArgs>();
  auto* c = app.add_subcommand("eval", "Split losses of a trained run's checkpoint");
  c->add_option("-o,--out", a->dir, "Run folder")->capture_default_str();
  c->add_flag("--calibrate", a->calibrate, "First set BatchNorm statistics from the whole training set (notebook cell 9)");
  c->add_flag("--json", a->json, "Print one JSON object");
  return [a] { return run_eval(*a); };
}

}  // namespace mm::cli
