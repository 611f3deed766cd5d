// The doctor on a saved run (`makemore inspect -o DIR`, Python's Run.inspect()): one minibatch
// measured in train mode without an update, and the initial loss of the same config
// re-initialized (which redraws the same weights).
#include <fmt/format.h>

#include <cmath>
#include <memory>

#include "makemore/diag.h"
#include "makemore/error.h"
#include "makemore/run.h"

namespace mm {

namespace {

// A minibatch of `B` training examples drawn as the trainer draws them.
void draw_batch(TorchGenerator& gen, const Examples& train, std::size_t B, std::vector<int32_t>& xb, std::vector<int32_t>& yb) {
  const auto T = static_cast<std::size_t>(train.block_size);
  std::vector<int64_t> ix(B);
  gen.randint(0, static_cast<int64_t>(train.size()), ix.data(), B);
  xb.resize(B * T);
  yb.resize(B);
  for (std::size_t b = 0; b < B; ++b) {
    const auto r = static_cast<std::size_t>(ix[b]);
    for (std::size_t t = 0; t < T; ++t) xb[b * T + t] = train.x[r * T + t];
    yb[b] = train.y[r];
  }
}

Splits inspect_splits(Run& run, const Config& cfg, const std::string& input_arg) {
  const std::string input = input_arg.empty() ? run.dir() + "/" + kWordsFile : input_arg;
  const Dataset data = Dataset::load(input, &run.vocab());
  Splits splits;
  try {
    splits = data.split(cfg.block_size, cfg.split_seed);
  } catch (const Error& e) {  // a character the run never saw: name the file it came from
    throw Error(fmt::format("{}: {}; pass the run's own words (the default) or a list in its characters", input, e.what()));
  }
  if (splits.train.size() < 2) throw Error(fmt::format("{}: too few items for a training split", input));
  return splits;
}

}  // namespace

Diagnosis inspect_run(Run& run, const std::string& input, int batch_size) {
  Config cfg = run.config();
  if (batch_size > 0) cfg.batch_size = batch_size;
  if (cfg.batch_size < 2) throw Error("--batch-size: use at least 2 (BatchNorm needs two rows)");
  const Splits splits = inspect_splits(run, cfg, input);
  Model& model = run.model();
  const auto B = static_cast<std::size_t>(cfg.batch_size);

  Diagnosis r;
  r.name = cfg.name;
  r.vocab_size = run.vocab().size();
  r.expected_loss = std::log(static_cast<double>(r.vocab_size));
  {
    Model fresh(cfg, r.vocab_size);
    TorchGenerator gen(cfg.seed);
    fresh.init(gen, splits.train);
    std::vector<int32_t> xb, yb;
    draw_batch(gen, splits.train, B, xb, yb);
    fresh.forward(xb.data(), static_cast<int>(B), ForwardContext(Mode::Train, &gen));
    r.initial_loss = fresh.loss(yb.data());
  }

  DiagOptions opt;
  opt.every = 0;
  opt.sample_from = &splits.train;
  opt.config = &cfg;
  DiagObserver obs(opt);
  TorchGenerator gen(cfg.seed ^ 0x5eedULL);  // a minibatch other than the first of training
  std::vector<int32_t> xb, yb;
  draw_batch(gen, splits.train, B, xb, yb);
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

}  // namespace mm
