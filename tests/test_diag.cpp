// Tests of src/diag.cpp: the one-pass statistics against a two-pass computation, histograms,
// dead-unit detection, that the observer leaves training bit-for-bit unchanged, the doctor's
// findings on the lecture's presets, the deep network after 1000 steps against the numbers
// PyTorch prints for the lecture's code (deep.py), and the JSON the plots read.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "makemore/diag.h"
#include "makemore/layer_kinds.h"
#include "makemore/layers.h"
#include "makemore/presets.h"
#include "makemore/train.h"
#include "test_util.h"

namespace {

using mm::Diagnosis;

// Two-pass mean and unbiased std in double: the reference the one-pass code must match.
void two_pass(const std::vector<float>& x, double* mean, double* sd) {
  double s = 0;
  for (float v : x) s += v;
  *mean = s / static_cast<double>(x.size());
  double ss = 0;
  for (float v : x) ss += (v - *mean) * (v - *mean);
  *sd = std::sqrt(ss / static_cast<double>(x.size() - 1));
}

TEST(DiagStats, MomentsMatchTwoPass) {
  std::mt19937 rng(7);
  // A large offset with a tiny spread is where naive sum / sum-of-squares breaks down.
  for (double offset : {0.0, 1.0, 1000.0}) {
    std::normal_distribution<float> nd(static_cast<float>(offset), offset > 100 ? 0.05f : 0.01f);
    std::vector<float> x(3217);
    for (auto& v : x) v = nd(rng);
    double mean, sd;
    two_pass(x, &mean, &sd);
    const mm::Moments m = mm::moments(x.data(), x.size());
    EXPECT_EQ(m.n, static_cast<int64_t>(x.size()));
    EXPECT_NEAR(m.mean, mean, 1e-12 * std::max(1.0, std::fabs(mean)));
    EXPECT_NEAR(m.std, sd, 1e-9 * sd) << "offset " << offset;
    mm::Welford w;
    for (float v : x) w.add(v);
    EXPECT_NEAR(w.mean(), mean, 1e-12 * std::max(1.0, std::fabs(mean)));
    EXPECT_NEAR(w.std(), sd, 1e-9 * sd);
  }
}

TEST(DiagStats, MomentsSkipNonFinite) {
  std::vector<float> x{1, 2, NAN, 3, INFINITY};
  const mm::Moments m = mm::moments(x.data(), x.size());
  EXPECT_EQ(m.n, 3);
  EXPECT_EQ(m.nonfinite, 2);
  EXPECT_DOUBLE_EQ(m.mean, 2.0);
  EXPECT_DOUBLE_EQ(m.std, 1.0);
  EXPECT_DOUBLE_EQ(m.min, 1.0);
  EXPECT_DOUBLE_EQ(m.max, 3.0);
}

TEST(DiagStats, HistogramCountsSumToFiniteValues) {
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.f, 2.f);
  std::vector<float> x(5000);
  for (auto& v : x) v = nd(rng);
  x[10] = NAN;
  for (auto [lo, hi] : {std::pair{0.0, 0.0}, std::pair{-1.0, 1.0}}) {  // from data; clamped to [-1, 1]
    const mm::Histogram h = mm::histogram(x.data(), x.size(), 50, lo, hi);
    ASSERT_EQ(h.counts.size(), 50u);
    int64_t total = 0;
    for (auto c : h.counts) total += c;
    EXPECT_EQ(total, 4999);
    EXPECT_LT(h.lo, h.hi);
  }
  const mm::Histogram h = mm::histogram(x.data(), x.size(), 50);
  const mm::Moments m = mm::moments(x.data(), x.size());
  EXPECT_DOUBLE_EQ(h.lo, m.min);
  EXPECT_DOUBLE_EQ(h.hi, m.max);
  EXPECT_GT(h.counts.front(), 0);  // the minimum lands in the first bin, the maximum in the last
  EXPECT_GT(h.counts.back(), 0);
  const std::vector<float> c(7, 0.25f);  // constant data still gets a valid range
  const mm::Histogram hc = mm::histogram(c.data(), c.size(), 10);
  EXPECT_LT(hc.lo, 0.25);
  EXPECT_GT(hc.hi, 0.25);
}

TEST(DiagStats, DeadColumns) {
  mm::Mat t(4, 3);
  t << 0.995f, -0.999f, 0.2f,    //
      -0.991f, 0.9999f, 0.999f,  //
      0.999f, -1.0f, 0.999f,     //
      0.98f, 0.995f, 0.999f;
  EXPECT_EQ(mm::count_dead_columns(t), 1);                                  // column 1 only: column 0 has 0.98
  EXPECT_EQ(mm::count_dead_columns(t, 0.97f), 2);                           // now column 0 too
  EXPECT_NEAR(mm::fraction_beyond(t.data(), 12, 0.99f), 10.0 / 12, 1e-12);  // all but 0.2 and 0.98
}

TEST(DiagStats, LossBuckets) {
  std::vector<float> l(2500, 1.0f);
  for (int i = 1000; i < 2000; ++i) l[i] = 3.0f;
  const auto b = mm::loss_buckets(l, 1000);
  ASSERT_EQ(b.size(), 3u);
  EXPECT_DOUBLE_EQ(b[0], 1.0);
  EXPECT_DOUBLE_EQ(b[1], 3.0);
  EXPECT_DOUBLE_EQ(b[2], 1.0);
}

// ---- on the lecture's data ----------------------------------------------------------------

bool has(const Diagnosis& r, const std::string& id) {
  for (const auto& f : r.findings)
    if (f.id == id) return true;
  return false;
}

std::string ids(const Diagnosis& r) {
  std::string s;
  for (const auto& f : r.findings) s += f.id + " ";
  return s;
}

Diagnosis inspect(const std::string& preset, int64_t steps) {
  const mm_test::Lecture* L = mm_test::lecture_data();
  return mm::inspect_training(mm::load_preset(preset), L->splits, L->vocab.size(), steps);
}

// The sample pass runs a 1,000-row train-mode forward (in a twin model) between backward and
// update: the parameters, gradients, running statistics and layer caches stay untouched.
TEST(DiagObserver, SamplePassLeavesTheStepUntouched) {
  NEED_DATA();
  mm::Config cfg = mm::load_preset("lecture-deep");
  mm::Model model(cfg, L->vocab.size());
  mm::TorchGenerator gen(cfg.seed);
  model.init(gen);
  std::vector<int32_t> x(32 * 3), y(32);
  for (int b = 0; b < 32; ++b) {
    for (int t = 0; t < 3; ++t) x[b * 3 + t] = L->splits.train.x[b * 997 * 3 + t];
    y[b] = L->splits.train.y[b * 997];
  }
  mm::DiagOptions opt;
  opt.sample_from = &L->splits.train;
  opt.config = &cfg;
  mm::DiagObserver obs(opt);
  model.forward(x.data(), 32, mm::Mode::Train);
  obs.capture_forward(model, 0, model.loss(y.data()));
  model.backward();
  const auto values = model.params().values(), grads = model.params().grads(), buffers = model.params().buffers();
  const mm::Mat out2 = model.stack().layers()[2]->out();
  obs.capture_backward(model, 0);
  EXPECT_EQ(model.stack().layers()[2]->out(), out2);
  EXPECT_EQ(values, model.params().values());
  EXPECT_EQ(grads, model.params().grads());
  EXPECT_EQ(buffers, model.params().buffers());
  obs.capture_update(model, 0, 0.1, false);
  ASSERT_TRUE(obs.last().has_value());
  EXPECT_GE(obs.last()->layers[2].dead_units_sample, 0);  // the sample was measured
}

// With the observer attached, training follows exactly the same path, bit for bit (the
// parameter buffers are 64-byte aligned, so repeated trainings in one process are identical).
TEST(DiagObserver, DoesNotChangeTraining) {
  NEED_DATA();
  mm::Config cfg = mm::load_preset("lecture-deep");
  cfg.steps = 40;
  mm::FloatBuf values[2], buffers[2];
  for (int with = 0; with < 2; ++with) {
    mm::Model model(cfg, L->vocab.size());
    mm::TorchGenerator gen(cfg.seed);
    model.init(gen);
    mm::Trainer t(model, cfg, L->splits.train, gen);
    mm::DiagOptions opt;
    opt.every = 7;
    opt.sample_from = &L->splits.train;
    mm::DiagObserver obs(opt);
    if (with) t.add_observer(&obs);
    t.run();
    values[with] = model.params().values();
    buffers[with] = model.params().buffers();
    if (with) {
      ASSERT_TRUE(obs.last().has_value());
      EXPECT_EQ(obs.last()->step, 35);
      EXPECT_EQ(obs.ratios().size(), 40u);  // every step below ratio_dense_steps
    }
  }
  EXPECT_TRUE(values[0] == values[1]);
  EXPECT_TRUE(buffers[0] == buffers[1]);
}

// cfg trained from its seed with a DiagObserver of opt attached; the observer after the run.
std::unique_ptr<mm::DiagObserver> train_observed(const mm_test::Lecture* L, const mm::Config& cfg, const mm::DiagOptions& opt) {
  mm::Model model(cfg, L->vocab.size());
  mm::TorchGenerator gen(cfg.seed);
  model.init(gen);
  mm::Trainer t(model, cfg, L->splits.train, gen);
  auto obs = std::make_unique<mm::DiagObserver>(opt);
  t.add_observer(obs.get());
  t.run();
  return obs;
}

TEST(DiagObserver, RecordsNothingWhenNotAsked) {
  NEED_DATA();
  mm::Config cfg = mm::load_preset("lecture-kaiming");
  cfg.steps = 5;
  mm::DiagOptions opt;
  opt.every = 0;
  opt.ratio_dense_steps = 0;
  opt.ratio_every = 0;
  const auto obs = train_observed(L, cfg, opt);
  EXPECT_FALSE(obs->last().has_value());
  EXPECT_TRUE(obs->ratios().empty());
}

// bins = 0 (a study's at-init summary): the same snapshot without its histograms.
TEST(DiagObserver, NoBinsGivesTheSameMomentsWithoutHistograms) {
  NEED_DATA();
  mm::Config cfg = mm::load_preset("lecture-batchnorm");
  cfg.steps = 3;
  std::optional<mm::Snapshot> snap[2];
  for (int bins : {50, 0}) {
    mm::DiagOptions opt;
    opt.every = 0;
    opt.last_step = 2;
    opt.sample = 0;
    opt.bins = bins;
    snap[bins == 0] = train_observed(L, cfg, opt)->last();
  }
  ASSERT_TRUE(snap[0] && snap[1]);
  ASSERT_EQ(snap[0]->layers.size(), snap[1]->layers.size());
  for (std::size_t i = 0; i < snap[0]->layers.size(); ++i) {
    const mm::LayerDiag &a = snap[0]->layers[i], &b = snap[1]->layers[i];
    EXPECT_EQ(a.hist.counts.size(), 50u) << a.name;
    EXPECT_TRUE(b.hist.counts.empty() && b.grad_hist.counts.empty() && b.pre_hist.counts.empty()) << b.name;
    EXPECT_EQ(a.out.mean, b.out.mean) << a.name;
    EXPECT_EQ(a.out.std, b.out.std) << a.name;
    EXPECT_EQ(a.saturated_pct, b.saturated_pct) << a.name;
    EXPECT_EQ(a.grad.std, b.grad.std) << a.name;
  }
  ASSERT_EQ(snap[0]->params.size(), snap[1]->params.size());
  for (std::size_t i = 0; i < snap[0]->params.size(); ++i) {
    EXPECT_FALSE(snap[0]->params[i].hist.counts.empty());
    EXPECT_TRUE(snap[1]->params[i].hist.counts.empty());
    EXPECT_EQ(snap[0]->params[i].grad_data_ratio, snap[1]->params[i].grad_data_ratio) << snap[0]->params[i].name;
  }
}

TEST(DiagObserver, UpdateRatioIsWhatSgdApplied) {
  NEED_DATA();
  // For SGD the applied update is -lr * grad: std(update) / std(data) = lr * grad std / data std.
  const Diagnosis r = inspect("lecture-kaiming", 3);
  ASSERT_TRUE(r.snapshot.updated);
  for (const auto& p : r.snapshot.params) {
    ASSERT_TRUE(p.update_data_log10.has_value()) << p.name;
    if (!(p.data.std > 0) || !(p.grad.std > 0)) continue;
    EXPECT_NEAR(*p.update_data_log10, std::log10(0.1 * p.grad.std / p.data.std), 1e-3) << p.name;
  }
}

TEST(DiagDoctor, DeadUnitsOnAConstructedNetwork) {
  NEED_DATA();
  // Tiny weights and huge biases: every pre-activation is its bias, far beyond tanh's knee,
  // so every unit is saturated for every example.
  mm::Config cfg = mm::load_preset("lecture-fix-tanh");
  cfg.layers[0].weight_init = mm::InitSpec{mm::InitSpec::Kind::Normal, 1e-3};
  cfg.layers[0].bias_init = mm::InitSpec{mm::InitSpec::Kind::Normal, 1000.0};
  const Diagnosis r = mm::inspect_training(cfg, L->splits, L->vocab.size(), 0);
  const mm::LayerDiag& t = r.snapshot.layers[1];
  ASSERT_EQ(t.kind, mm::find_layer_kind("tanh"));
  EXPECT_GT(t.dead_units_sample, 195);  // a bias within 2.65 of 0 is ~0.2% likely per unit
  EXPECT_EQ(t.dead_units_sample, t.dead_units);
  EXPECT_TRUE(has(r, "dead-units")) << ids(r);
  EXPECT_TRUE(has(r, "saturated-activations")) << ids(r);
}

TEST(DiagDoctor, LecturePresetsAtInit) {
  NEED_DATA();
  const Diagnosis orig = inspect("lecture-original", 0);
  EXPECT_NEAR(*orig.initial_loss, 27.8817, 1e-3);
  EXPECT_TRUE(has(orig, "overconfident-output")) << ids(orig);
  EXPECT_TRUE(has(orig, "saturated-activations")) << ids(orig);
  // lecture.py: 3901 of 6400 minibatch activations beyond 0.99, 62.4% over the whole split.
  EXPECT_NEAR(orig.snapshot.layers[1].sat99_pct, 100.0 * 3901 / 6400, 0.05);
  EXPECT_NEAR(orig.snapshot.layers[1].sat99_pct_sample, 62.4, 4.0);

  const Diagnosis soft = inspect("lecture-fix-softmax", 0);
  EXPECT_FALSE(has(soft, "overconfident-output")) << ids(soft);
  EXPECT_TRUE(has(soft, "saturated-activations")) << ids(soft);

  for (const char* p : {"lecture-fix-tanh", "lecture-kaiming", "lecture-batchnorm"}) {
    const Diagnosis r = inspect(p, 0);
    EXPECT_FALSE(has(r, "overconfident-output")) << p << ": " << ids(r);
    EXPECT_FALSE(has(r, "saturated-activations")) << p << ": " << ids(r);
    EXPECT_TRUE(r.findings.empty()) << p << ": " << ids(r);
  }
}

// deep.py (PyTorch running the lecture's cells 13-17), after steps 0..1000 with the lecture's
// seed; it prints:
//   layer 2 (Tanh): mean -0.00, std 0.63, saturated: 2.78%   ... layer 14: std 0.65, 1.88%
//   layer 2 gradient std 2.640702e-03 ... layer 14: 1.952382e-03
//   weight (30, 100) grad:data ratio 4.881088e-02; weight (100, 27) 1.160105e-01
TEST(DiagDoctor, DeepNetworkAfter1000StepsLikeTheLecture) {
  NEED_DATA();
  const Diagnosis r = inspect("lecture-deep", 1000);
  EXPECT_NEAR(*r.initial_loss, 3.2870, 1e-3);
  const double want_sat[] = {2.78, 2.56, 2.25, 1.69, 1.88};
  const double want_grad[] = {2.640702e-03, 2.245584e-03, 2.045740e-03, 1.983133e-03, 1.952382e-03};
  int k = 0;
  for (const auto& d : r.snapshot.layers) {
    if (d.kind != mm::find_layer_kind("tanh")) continue;
    ASSERT_LT(k, 5);
    EXPECT_EQ(d.index, 2 + 3 * k);
    EXPECT_GT(d.out.std, 0.60);
    EXPECT_LT(d.out.std, 0.68);
    EXPECT_NEAR(d.saturated_pct, want_sat[k], 0.5) << "layer " << d.index;
    EXPECT_NEAR(d.grad.std, want_grad[k], 0.05 * want_grad[k]) << "layer " << d.index;
    ++k;
  }
  EXPECT_EQ(k, 5);
  for (const auto& p : r.snapshot.params) {
    if (p.is_1d) continue;
    EXPECT_GT(p.grad_data_ratio, 5e-3) << p.name;
    EXPECT_LT(p.grad_data_ratio, 2e-1) << p.name;
    if (p.name == "layers.0.weight") {
      EXPECT_NEAR(p.grad_data_ratio, 4.881088e-02, 0.05 * 4.881088e-02);
    }
    if (p.name == "layers.15.weight") {
      EXPECT_NEAR(p.grad_data_ratio, 1.160105e-01, 0.05 * 1.160105e-01);
    }
  }
  EXPECT_FALSE(has(r, "saturated-activations")) << ids(r);
  EXPECT_FALSE(has(r, "vanishing-gradients")) << ids(r);
  EXPECT_FALSE(has(r, "exploding-gradients")) << ids(r);
  EXPECT_FALSE(has(r, "activations-collapse")) << ids(r);
}

TEST(DiagDoctor, UpdateRatioFlagsATinyLearningRate) {
  NEED_DATA();
  mm::Config cfg = mm::load_preset("lecture-kaiming");
  cfg.lr.values = {1e-5};
  cfg.lr.boundaries.clear();
  const Diagnosis r = mm::inspect_training(cfg, L->splits, L->vocab.size(), 50);
  EXPECT_TRUE(has(r, "update-ratio")) << ids(r);
  for (const auto& f : r.findings) {
    if (f.id != "update-ratio") continue;
    EXPECT_NE(f.fix.find("set the learning rate to about"), std::string::npos) << f.fix;
  }
}

// The lecture's own network after a few thousand steps: only the output layer (scaled down at
// init) updates fast. The learning rate is shared, so the doctor must not tell the user to cut
// it ~40x for that one weight.
TEST(DiagDoctor, UpdateRatioOfOneWeightDoesNotMoveTheLearningRate) {
  NEED_DATA();
  const Diagnosis r = mm::inspect_training(mm::load_preset("lecture-kaiming"), L->splits, L->vocab.size(), 3000);
  EXPECT_TRUE(has(r, "update-ratio")) << ids(r);  // the output layer's fast updates are still reported
  for (const auto& f : r.findings) {
    if (f.id != "update-ratio") continue;
    EXPECT_EQ(f.fix.find("set the learning rate"), std::string::npos) << f.fix;
    EXPECT_NE(f.fix.find("keep the learning rate"), std::string::npos) << f.fix;
  }
}

TEST(DiagJson, KeysPresent) {
  NEED_DATA();
  const Diagnosis r = inspect("lecture-batchnorm", 2);
  const nlohmann::json j = mm::diagnosis_json(r);
  for (const char* k : {"expected_loss", "initial_loss", "layers", "params", "findings", "saturation_map", "step"})
    EXPECT_TRUE(j.contains(k)) << k;
  ASSERT_EQ(j["layers"].size(), r.snapshot.layers.size());
  for (const auto& l : j["layers"]) {
    for (const char* k : {"index", "type", "out_mean", "out_std", "saturated_pct", "grad_mean", "grad_std", "sat99_pct",
                          "dead_units", "dead_units_sample", "hist", "grad_hist"})
      EXPECT_TRUE(l.contains(k)) << k;
    for (const char* k : {"lo", "hi", "counts"}) EXPECT_TRUE(l["hist"].contains(k)) << k;
    if (l["type"] == "Tanh") {
      ASSERT_TRUE(l.contains("pre"));
      for (const char* k : {"mean", "std", "hist"}) EXPECT_TRUE(l["pre"].contains(k)) << k;
    }
  }
  for (const auto& p : j["params"])
    for (const char* k : {"name", "shape", "data_std", "grad_mean", "grad_std", "grad_data_ratio", "hist", "update_data_log10"})
      EXPECT_TRUE(p.contains(k)) << k;
  const auto& m = j["saturation_map"];
  EXPECT_EQ(m["layer"], 2);
  EXPECT_EQ(m["rows"], 32);
  EXPECT_EQ(m["cols"], 200);
  EXPECT_EQ(m["bits"].get<std::string>().size(), 32u * 200u);
  EXPECT_EQ(j["step"], 2);
  // At initialization there is no update to report.
  const nlohmann::json j0 = mm::diagnosis_json(inspect("lecture-batchnorm", 0));
  for (const auto& p : j0["params"]) EXPECT_FALSE(p.contains("update_data_log10"));
  EXPECT_TRUE(j0["healthy"].get<bool>());
}

TEST(DiagText, LectureFormat) {
  NEED_DATA();
  const std::string t = mm::format_diagnosis(inspect("lecture-original", 0));
  EXPECT_NE(t.find("layer 1 (      Tanh): mean "), std::string::npos) << t;
  EXPECT_NE(t.find("weight  (30, 200) | mean "), std::string::npos) << t;
  EXPECT_NE(t.find("[overconfident-output]"), std::string::npos) << t;
  mm::Histogram h;
  h.counts = {0, 1, 8};
  EXPECT_EQ(mm::sparkline(h), " ▁█");
}

}  // namespace

// Inside residual blocks: the layers of each branch are measured like the stack's (named
// "block.position"), their gradients are the branch's own, and the doctor diagnoses them,
// naming the branch's Linear in its cure.
TEST(DiagDoctor, LooksInsideResidualBlocks) {
  NEED_DATA();
  nlohmann::json j = mm::load_preset("lecture-kaiming").to_json();
  j["model"]["layers"] = nlohmann::json::parse(R"([
    {"type": "linear", "out": 100, "weight_init": {"kind": "kaiming", "gain": "tanh"}},
    {"type": "tanh"},
    {"type": "residual", "layers": [
      {"type": "linear", "out": 100, "bias": false, "weight_init": {"kind": "normal", "scale": 1.0}},
      {"type": "tanh"}]},
    {"type": "linear", "out": "vocab", "weight_init": {"kind": "normal", "scale": 0.01}}])");
  const mm::Config cfg = mm::parse_config(j, "test.json");
  std::unique_ptr<mm::Model> model;
  const Diagnosis r = mm::inspect_training(cfg, L->splits, L->vocab.size(), 0, &model);
  ASSERT_EQ(r.snapshot.layers.size(), 4u);
  ASSERT_EQ(r.snapshot.inner.size(), 2u);
  const mm::LayerDiag& t = r.snapshot.inner[1];
  EXPECT_EQ(t.name, "2.1");
  EXPECT_EQ(t.index, 2);
  ASSERT_EQ(t.kind, mm::find_layer_kind("tanh"));
  auto& block = dynamic_cast<mm::Residual&>(*model->stack().layers()[2]);
  const mm::Mat& out = block.branch().layers()[1]->out();
  const mm::Mat& pre = block.branch().layers()[0]->out();
  const mm::Mat& grad = block.branch().dout(1);
  EXPECT_DOUBLE_EQ(t.out.std, mm::moments(out.data(), static_cast<std::size_t>(out.size())).std);
  ASSERT_TRUE(t.has_pre);
  EXPECT_DOUBLE_EQ(t.pre.std, mm::moments(pre.data(), static_cast<std::size_t>(pre.size())).std);
  ASSERT_TRUE(t.has_grad);
  EXPECT_DOUBLE_EQ(t.grad.std, mm::moments(grad.data(), static_cast<std::size_t>(grad.size())).std);
  EXPECT_GT(t.pre.std, 5.0);  // fan_in 100, weights N(0, 1): pre-activations ~8x too wide
  EXPECT_GT(t.sat99_pct, 50.0);
  // In forward order, after the block itself.
  const auto order = mm::layers_in_order(r.snapshot);
  ASSERT_EQ(order.size(), 6u);
  EXPECT_EQ(order[3]->name, "2.0");
  EXPECT_EQ(order[4]->name, "2.1");
  EXPECT_EQ(order[5]->name, "3");

  bool found = false;
  for (const auto& f : r.findings)
    if (f.id == "saturated-activations" && f.message.find("layer 2.1 (Tanh)") != std::string::npos) {
      found = true;
      EXPECT_NE(f.fix.find("layers.2.layers.0.weight"), std::string::npos) << f.fix;
      EXPECT_NE(f.fix.find("(5/3)/sqrt(100)"), std::string::npos) << f.fix;
    }
  EXPECT_TRUE(found) << ids(r);
  EXPECT_NE(mm::format_diagnosis(r).find("layer 2.1 (      Tanh)"), std::string::npos);
  const nlohmann::json js = mm::snapshot_json(r.snapshot, false);
  ASSERT_TRUE(js.contains("inner_layers"));
  EXPECT_EQ(js["inner_layers"][1]["name"], "2.1");
  EXPECT_EQ(js["inner_layers"][1]["index"], 2);
  // Networks without blocks have none (and their JSON no such key).
  EXPECT_TRUE(inspect("lecture-deep", 0).snapshot.inner.empty());
  EXPECT_FALSE(mm::snapshot_json(inspect("lecture-deep", 0).snapshot, false).contains("inner_layers"));
}

// Across depth, the Tanh layers inside residual blocks count (a residual stack may have one
// top-level Tanh or none): N(0,1) blocks saturate, and the gradient at the first Tanh is
// hundreds of times that at the last; the preset with LayerNorm and Kaiming blocks has no
// depth finding.
TEST(DiagDoctor, AcrossDepthIncludesTanhInsideResidualBlocks) {
  NEED_DATA();
  nlohmann::json j = mm::load_preset("deep-residual-layernorm").to_json();
  for (auto& l : j["model"]["layers"]) {
    if (l["type"] != "residual") continue;
    nlohmann::json inner = nlohmann::json::array();
    for (auto& x : l["layers"]) {
      if (x["type"] == "layernorm") continue;
      if (x["type"] == "linear") x["weight_init"] = {{"kind", "normal"}};
      inner.push_back(x);
    }
    l["layers"] = inner;
  }
  const mm::Config cfg = mm::parse_config(j, "test.json");
  const Diagnosis r = mm::inspect_training(cfg, L->splits, L->vocab.size(), 0);
  int top_tanh = 0;
  for (const auto& d : r.snapshot.layers) top_tanh += d.kind == mm::find_layer_kind("tanh");
  ASSERT_EQ(top_tanh, 1);  // alone, the stack's own Tanh layers could not show it
  EXPECT_TRUE(has(r, "exploding-gradients")) << ids(r);
  for (const auto& f : r.findings) {
    if (f.id == "exploding-gradients") {
      EXPECT_NE(f.evidence.find("layer 10.1 (Tanh)"), std::string::npos) << f.evidence;
    }
  }

  const Diagnosis ok = inspect("deep-residual-layernorm", 0);
  for (const char* id : {"vanishing-gradients", "exploding-gradients", "activations-collapse", "activations-explode"})
    EXPECT_FALSE(has(ok, id)) << id << ": " << ids(ok);
}
