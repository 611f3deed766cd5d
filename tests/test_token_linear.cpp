// The token path of a Linear that reads the embedding's rows (layers.h): against the plain
// products through x, in every mode this build has (Portable always, Simd with AVX-512), for
// shapes that reach each kernel's edge cases (masked last vector, several column blocks, more
// than 16 embedding dimensions, one position, a batch holding one token everywhere), in
// training and in evaluation, and with BatchNorm after the Linear. Also: which layers take the
// path, and that a model whose first Linear took it still has its embedding gradient overwritten.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "makemore/config.h"
#include "makemore/layers.h"
#include "makemore/model.h"
#include "makemore/presets.h"
#include "makemore/rng.h"

namespace {

using mm::Mode;
using mm::TokenLinear;

class TokenLinearGuard {
 public:
  TokenLinearGuard() : saved_(mm::token_linear()) {}
  ~TokenLinearGuard() { mm::set_token_linear(saved_); }

 private:
  TokenLinear saved_;
};

std::vector<TokenLinear> token_modes() {
  std::vector<TokenLinear> m{TokenLinear::Portable};
  if (mm::token_linear_available(TokenLinear::Simd)) m.push_back(TokenLinear::Simd);
  return m;
}

mm::Config mlp(int block, int n_embd, int hidden, bool bias, bool batchnorm) {
  nlohmann::json layers = nlohmann::json::array();
  nlohmann::json first = {
      {"type", "linear"}, {"out", hidden}, {"bias", bias}, {"weight_init", {{"kind", "kaiming"}, {"gain", "tanh"}}}};
  if (bias) first["bias_init"] = {{"kind", "normal"}, {"scale", 0.1}};
  layers.push_back(first);
  if (batchnorm) layers.push_back({{"type", "batchnorm1d"}});
  layers.push_back({{"type", "tanh"}});
  layers.push_back({{"type", "linear"}, {"out", "vocab"}});
  const nlohmann::json j = {{"data", {{"block_size", block}}},
                            {"model", {{"n_embd", n_embd}, {"layers", layers}}},
                            {"train", {{"steps", 10}, {"batch_size", 32}}}};
  return mm::parse_config(j, "test");
}

struct StepResult {
  mm::Mat logits;
  mm::FloatBuf grads;
  bool took = false;
};

StepResult run_step(const mm::Config& cfg, TokenLinear t, const std::vector<int32_t>& x, const std::vector<int32_t>& y, Mode mode,
                    int vocab) {
  mm::set_token_linear(t);
  mm::Model model(cfg, vocab);
  mm::TorchGenerator gen(cfg.seed);
  model.init(gen);
  const int batch = static_cast<int>(y.size());
  StepResult r;
  r.logits = model.forward(x.data(), batch, mode);
  r.took = model.first_linear_took_tokens();
  model.loss(y.data());
  // A stale embedding gradient must be overwritten, not added to.
  std::fill(model.params().grads().begin(), model.params().grads().end(), 7.0f);
  model.backward();
  r.grads = model.params().grads();
  return r;
}

// max |a - b| / (1e-6 + max |b|): the error relative to the array's scale.
double scaled_diff(const float* a, const float* b, std::size_t n) {
  double diff = 0, scale = 0;
  for (std::size_t i = 0; i < n; ++i) {
    diff = std::max(diff, std::fabs(static_cast<double>(a[i]) - b[i]));
    scale = std::max(scale, std::fabs(static_cast<double>(b[i])));
  }
  return diff / (1e-6 + scale);
}

struct Shape {
  int block, n_embd, hidden, batch, vocab;
  bool bias, batchnorm, one_token;
};

// Part 5's shape: the context in groups of n positions (FlattenConsecutive(n)), a Linear on
// each group, BatchNorm (optional), tanh, then all groups side by side, and the output layer.
mm::Config hierarchical(int block, int n_embd, int n, int hidden, bool bias, bool batchnorm) {
  nlohmann::json layers = nlohmann::json::array();
  layers.push_back({{"type", "flatten"}, {"n", n}});
  layers.push_back({{"type", "linear"}, {"out", hidden}, {"bias", bias}});
  if (batchnorm) layers.push_back({{"type", "batchnorm1d"}});
  layers.push_back({{"type", "tanh"}});
  layers.push_back({{"type", "flatten"}});
  layers.push_back({{"type", "linear"}, {"out", "vocab"}});
  const nlohmann::json j = {{"data", {{"block_size", block}}},
                            {"model", {{"n_embd", n_embd}, {"layers", layers}}},
                            {"train", {{"steps", 10}, {"batch_size", 32}}}};
  return mm::parse_config(j, "test");
}

void compare_paths(const mm::Config& cfg, const Shape& s, Mode mode) {
  SCOPED_TRACE(mode == Mode::Train ? "training" : "evaluation");
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> tok(0, s.vocab - 1);
  std::vector<int32_t> x(static_cast<std::size_t>(s.batch) * static_cast<std::size_t>(s.block)),
      y(static_cast<std::size_t>(s.batch));
  for (auto& t : x) t = s.one_token ? 3 : tok(rng) % 6 == 0 ? 0 : tok(rng);  // repeats, as '.' in names
  for (auto& t : y) t = tok(rng);
  const StepResult ref = run_step(cfg, TokenLinear::Off, x, y, mode, s.vocab);
  EXPECT_FALSE(ref.took);
  for (TokenLinear t : token_modes()) {
    SCOPED_TRACE(mm::token_linear_name(t));
    const StepResult r = run_step(cfg, t, x, y, mode, s.vocab);
    EXPECT_TRUE(r.took);
    // The same sums in another order: float rounding only. Measured: logits and gradients
    // within ~1e-6 of their scale (2e-7 typical); 2e-5 leaves room and still catches any
    // wrong term (a missing pair or position moves them by ~1e-1).
    EXPECT_LT(scaled_diff(r.logits.data(), ref.logits.data(), static_cast<std::size_t>(ref.logits.size())), 2e-5);
    mm::Model shape_of(cfg, s.vocab);
    for (const auto& info : shape_of.params().infos()) {
      if (!info.trainable) continue;
      SCOPED_TRACE(info.name);
      EXPECT_LT(scaled_diff(r.grads.data() + info.offset, ref.grads.data() + info.offset, info.size()), 2e-5);
    }
  }
}

TEST(TokenLinear, AgreesWithTheProductsThroughX) {
  TokenLinearGuard guard;
  const Shape shapes[] = {
      {3, 10, 200, 32, 27, false, true, false},   // lecture-batchnorm: 200 = 13 vectors, the last half full
      {3, 10, 200, 32, 27, true, false, false},   // lecture-kaiming, with the bias in the gather
      {8, 24, 1000, 32, 27, false, true, false},  // big-mlp: several column blocks, n_embd > 16
      {1, 2, 5, 7, 5, true, false, false},        // one position, one masked vector, tiny vocab
      {4, 17, 33, 16, 40, true, false, false},    // odd widths everywhere
      {3, 10, 200, 32, 27, true, false, true},    // one token in every position: one pair each
  };
  for (const Shape& s : shapes) {
    SCOPED_TRACE("block " + std::to_string(s.block) + " n_embd " + std::to_string(s.n_embd) + " hidden " +
                 std::to_string(s.hidden));
    compare_paths(mlp(s.block, s.n_embd, s.hidden, s.bias, s.batchnorm), s, Mode::Train);
  }
}

// After a leading FlattenConsecutive(n) the first Linear's rows are n positions each (the
// tokens viewed n to a row): the same numbers as through the flatten's copy, in training and in
// evaluation, the embedding's gradient included.
TEST(TokenLinear, AfterAFlattenAgreesWithTheProductsThroughX) {
  TokenLinearGuard guard;
  const Shape shapes[] = {
      {8, 24, 128, 32, 27, false, true, false},  // wavenet's first level: 24 = 16 + 8 embedding dimensions
      {6, 7, 33, 16, 40, true, false, false},    // three pairs of positions, odd widths, a bias
      {8, 24, 128, 32, 27, false, false, true},  // one token in every position: one pair each
  };
  for (const Shape& s : shapes) {
    SCOPED_TRACE("block " + std::to_string(s.block) + " n_embd " + std::to_string(s.n_embd));
    // (BatchNorm of rows that are all alike, or a bias before it, whose gradient is then only
    // rounding, would turn rounding into differences of any size: the one-token and bias rows
    // go without it, as in the shapes above.)
    const mm::Config cfg = hierarchical(s.block, s.n_embd, 2, s.hidden, s.bias, s.batchnorm);
    compare_paths(cfg, s, Mode::Train);
    compare_paths(cfg, s, Mode::Eval);
  }
  // Four positions to a row.
  compare_paths(hierarchical(8, 10, 4, 64, false, true), {8, 10, 64, 32, 27, false, true, false}, Mode::Train);
}

TEST(TokenLinear, AgreesInEvaluationChunks) {
  TokenLinearGuard guard;
  // 1,024 rows, as evaluate() forwards them: at most 3 x 27 pairs for the whole chunk.
  compare_paths(mlp(3, 10, 200, false, true), {3, 10, 200, 1024, 27, false, true, false}, Mode::Eval);
  compare_paths(mlp(3, 10, 200, true, false), {3, 10, 200, 1024, 27, true, false, false}, Mode::Eval);
}

TEST(TokenLinear, OnlyAFirstLinearOverTheFlattenedContextTakesIt) {
  TokenLinearGuard guard;
  mm::set_token_linear(token_modes().back());
  std::vector<int32_t> x(4 * 8, 1), y(4, 2);
  {
    mm::Model model(mm::load_preset("lecture-kaiming"), 27);
    mm::TorchGenerator gen(1);
    model.init(gen);
    model.forward(x.data(), 4, Mode::Train);
    EXPECT_TRUE(model.first_linear_took_tokens());
  }
  {
    // WaveNet's stack starts with FlattenConsecutive: its first Linear sees pairs of positions,
    // the tokens two to a row.
    mm::Model model(mm::load_preset("wavenet"), 27);
    mm::TorchGenerator gen(1);
    model.init(gen);
    model.forward(x.data(), 4, Mode::Train);
    EXPECT_TRUE(model.first_linear_took_tokens());
  }
  {
    // A layer between the flatten and the Linear: the Linear's rows are no longer the tokens'.
    nlohmann::json j = mm::load_preset("wavenet").to_json();
    auto& layers = j["model"]["layers"];
    layers.insert(layers.begin() + 1, nlohmann::json{{"type", "tanh"}});
    mm::Model model(mm::parse_config(j, "test"), 27);
    mm::TorchGenerator gen(1);
    model.init(gen);
    model.forward(x.data(), 4, Mode::Train);
    EXPECT_FALSE(model.first_linear_took_tokens());
  }
  {
    // A Linear called on another input than the embedding's (calibration, diagnostics) takes
    // the plain path.
    mm::Model model(mm::load_preset("lecture-kaiming"), 27);
    mm::TorchGenerator gen(1);
    model.init(gen);
    model.forward(x.data(), 4, Mode::Train);
    const mm::Mat copy = model.stack_input();
    auto& first = static_cast<mm::Linear&>(*model.stack().layers()[0]);
    first.forward(copy, Mode::Train);
    EXPECT_FALSE(first.took_token_path());
  }
}

// With the update inside the backward (no one reads the layers' output gradients) and the
// embedding's gradient written by the first Linear, the flatten under it has nothing to do: its
// backward is skipped, and so is the Linear's dx (the same parameter gradients either way:
// OptimTrainer.UpdatingInsideTheBackwardGivesTheSameBits). A plain backward still runs it.
TEST(TokenLinear, TheFlattenUnderTheTokenPathSkipsItsBackward) {
  TokenLinearGuard guard;
  mm::set_token_linear(token_modes().back());
  struct Count : mm::LayerProbe {
    const mm::Layer* watched = nullptr;
    int backwards = 0;
    void begin(const mm::Layer& l, mm::Pass p) override { backwards += &l == watched && p == mm::Pass::Backward; }
    void end(const mm::Layer&, mm::Pass) override {}
  };
  mm::Model model(mm::load_preset("wavenet"), 27);
  ASSERT_TRUE(model.updates_by_layer());
  mm::TorchGenerator gen(1);
  model.init(gen);
  std::vector<int32_t> x(32 * 8), y(32);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = static_cast<int32_t>((i * 7) % 27);
  for (std::size_t i = 0; i < y.size(); ++i) y[i] = static_cast<int32_t>((i * 5) % 27);
  Count count;
  count.watched = model.stack().layers()[0].get();
  ASSERT_EQ(count.watched->type(), "FlattenConsecutive");
  mm::ScopedLayerProbe scope(&count);
  for (bool inside : {true, false, true}) {
    SCOPED_TRACE(inside ? "update inside" : "plain backward");
    count.backwards = 0;
    model.forward(x.data(), 32, mm::ForwardContext(Mode::Train, &gen));
    ASSERT_TRUE(model.first_linear_took_tokens());
    model.loss(y.data());
    if (inside)
      model.backward([](std::size_t, std::size_t, std::size_t) {});
    else
      model.backward();
    EXPECT_EQ(count.backwards, inside ? 0 : 1);
  }
}

TEST(TokenLinear, UnavailableModeIsRefused) {
  TokenLinearGuard guard;
  if (mm::token_linear_available(TokenLinear::Simd)) GTEST_SKIP() << "this build has the SIMD kernels";
  EXPECT_THROW(mm::set_token_linear(TokenLinear::Simd), std::invalid_argument);
}

}  // namespace
