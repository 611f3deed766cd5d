// Tests of src/optim.cpp and the train config's optimizer / lr / clip_grad_norm: every optimizer
// case against torch.optim's parameter values after five steps (tests/data/torch/optim.json,
// written by tools/gen_optim_fixture.py), the schedules against torch's schedulers and at chosen
// steps, clipping against clip_grad_norm_, config parsing / round trips / errors, the update:data
// diagnostic under Adam, and an Adam training run through the Trainer.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "makemore/config.h"
#include "makemore/diag.h"
#include "makemore/error.h"
#include "makemore/layers.h"
#include "makemore/model.h"
#include "makemore/optim.h"
#include "makemore/parallel.h"
#include "makemore/params.h"
#include "makemore/perf.h"
#include "makemore/presets.h"
#include "makemore/train.h"
#include "test_util.h"

namespace {

using json = nlohmann::json;

const json& fixture() {
  static const json j = [] {
    std::ifstream in(std::string(MM_TEST_DATA_DIR) + "/torch/optim.json");
    std::stringstream ss;
    ss << in.rdbuf();
    return json::parse(ss.str());
  }();
  return j;
}

// A config with the given train fields, parsed as a user's file would be.
mm::Config config_with(const json& train) {
  json j = mm::load_preset("lecture-kaiming").to_json();
  for (auto it = train.begin(); it != train.end(); ++it) j["train"][it.key()] = it.value();
  return mm::parse_config(j, "test.json");
}

std::string parse_error(const json& train) {
  try {
    config_with(train);
  } catch (const mm::Error& e) {
    return e.what();
  }
  return "(no error)";
}

// The fixture's parameters in a ParamStore (with its padding between them).
struct Params {
  mm::ParamStore store;
  std::vector<std::string> names;
  explicit Params(const json& fx) {
    for (auto it = fx["shapes"].begin(); it != fx["shapes"].end(); ++it) {
      mm::ParamInfo p;
      p.name = it.key();
      const auto& s = it.value();
      p.rows = s.size() == 2 ? s[0].get<int>() : 1;
      p.cols = s.size() == 2 ? s[1].get<int>() : s[0].get<int>();
      p.is_1d = s.size() == 1;
      store.add(p);
      names.push_back(it.key());
    }
    store.finalize();
    set(store.values(), fx["init"]);
  }
  void set(mm::FloatBuf& buf, const json& by_name) {
    for (std::size_t i = 0; i < names.size(); ++i) {
      const auto& p = store.info(static_cast<int>(i));
      const auto& v = by_name.at(names[i]);
      ASSERT_EQ(v.size(), p.size());
      for (std::size_t k = 0; k < p.size(); ++k) buf[p.offset + k] = v[k].get<float>();
    }
  }
  bool padding_is_zero(const mm::FloatBuf& buf) const {
    if (buf.size() != store.values().size()) return false;
    std::vector<bool> used(buf.size(), false);
    for (const auto& p : store.infos())
      for (std::size_t k = 0; k < p.size(); ++k) used[p.offset + k] = true;
    for (std::size_t k = 0; k < buf.size(); ++k)
      if (!used[k] && buf[k] != 0.0f) return false;
    return true;
  }
};

TEST(OptimTorch, EveryCaseMatchesTorchAfterEachStep) {
  const json& fx = fixture();
  ASSERT_GE(fx["cases"].size(), 10u);
  for (const auto& c : fx["cases"]) {
    const std::string name = c["name"];
    SCOPED_TRACE(name);
    const int64_t steps = c["steps"];
    const mm::Config cfg =
        config_with({{"optimizer", c["optimizer"]}, {"lr", c["lr"]}, {"steps", steps}, {"clip_grad_norm", c["clip_grad_norm"]}});
    Params P(fx);
    mm::Optimizer opt(cfg.optimizer, P.store.values().size());
    double worst = 0;
    for (int64_t s = 0; s < steps; ++s) {
      const double lr_torch = c["lrs"][s];
      const double lr = cfg.lr_at(s);
      EXPECT_NEAR(lr, lr_torch, 1e-12 * lr_torch) << "step " << s;
      P.set(P.store.grads(), fx["grads"][s]);
      if (cfg.clip_grad_norm > 0) mm::clip_grad_norm(P.store.grads(), cfg.clip_grad_norm);
      opt.step(P.store.values(), P.store.grads(), lr);
      const json& want = c["params_after"][s];
      for (std::size_t i = 0; i < P.names.size(); ++i) {
        const float* got = P.store.data(static_cast<int>(i));
        const auto& w = want[P.names[i]];
        for (std::size_t k = 0; k < w.size(); ++k) {
          const double ref = w[k].get<double>();
          // Relative to the value, or to 0.1 for values near 0: the parameters are N(0, 0.5^2), so
          // a value near 0 carries the rounding error of the larger numbers it came from.
          const double err = std::fabs(got[k] - ref) / std::max(std::fabs(ref), 0.1);
          worst = std::max(worst, err);
          EXPECT_LE(err, 1e-6) << P.names[i] << "[" << k << "] step " << s << ": " << got[k] << " vs torch " << ref;
        }
      }
      EXPECT_TRUE(P.padding_is_zero(P.store.values())) << "step " << s;
    }
    EXPECT_EQ(opt.steps_taken(), steps);
    RecordProperty(name, fmt::format("{:.3e}", worst));
  }
}

TEST(OptimTorch, StateBuffersKeepPaddingZero) {
  const json& fx = fixture();
  for (const char* type : {"sgd", "rmsprop", "adam", "adamw"}) {
    json o{{"type", type}, {"weight_decay", 0.1}};
    if (std::string(type) == "sgd" || std::string(type) == "rmsprop") o["momentum"] = 0.9;
    if (std::string(type) == "rmsprop") o["centered"] = true;
    if (std::string(type) == "adam" || std::string(type) == "adamw") o["amsgrad"] = true;
    const mm::Config cfg = config_with({{"optimizer", o}});
    Params P(fx);
    mm::Optimizer opt(cfg.optimizer, P.store.values().size());
    for (int s = 0; s < 3; ++s) {
      P.set(P.store.grads(), fx["grads"][s]);
      opt.step(P.store.values(), P.store.grads(), 0.01);
    }
    EXPECT_TRUE(P.padding_is_zero(P.store.values())) << type;
    for (const char* b : {"momentum_buffer", "square_avg", "grad_avg", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"})
      EXPECT_TRUE(opt.buffer(b).empty() || P.padding_is_zero(opt.buffer(b))) << type << " " << b;
  }
}

// Plain SGD stays the lecture's update expression, bit for bit (the lecture tests check the
// resulting runs against the notebook).
TEST(OptimSgd, PlainSgdIsTheLectureUpdateBitForBit) {
  for (const json& o : {json("sgd"), json{{"type", "sgd"}, {"momentum", 0}, {"dampening", 0.5}}}) {
    const mm::Config cfg = config_with({{"optimizer", o}});
    ASSERT_TRUE(cfg.optimizer.is_plain_sgd());
    mm::FloatBuf p(1000), g(1000);
    for (std::size_t k = 0; k < p.size(); ++k) {
      p[k] = std::sin(static_cast<float>(k)) * 0.7f;
      g[k] = std::cos(static_cast<float>(k) * 1.3f) * 0.03f;
    }
    const mm::FloatBuf p0 = p;
    const double lr = 0.1;
    const float neg_lr = static_cast<float>(-lr);
    const std::string saved = mm::kernel_set();
    for (const std::string& set : mm::kernel_sets()) {
      SCOPED_TRACE(set);
      mm::set_kernel_set(set);
      // The expression Trainer::step used before optimizers existed, as each kernel set compiles
      // it: one fused multiply-add where the set has FMAs (avx512, avx2: GCC contracts it); in
      // the generic and native sets, this very loop, compiled with the same flags as theirs.
      mm::FloatBuf want = p0;
      for (std::size_t k = 0; k < p.size(); ++k) {
        if (set == "avx512" || set == "avx2") {
          want[k] = std::fma(neg_lr, g[k], want[k]);
        } else {
          const float u = neg_lr * g[k];
          want[k] = want[k] + u;
        }
      }
      mm::FloatBuf q = p0;
      mm::Optimizer opt(cfg.optimizer, q.size());
      opt.step(q, g, lr);
      for (std::size_t k = 0; k < q.size(); ++k) ASSERT_EQ(q[k], want[k]) << k;
    }
    mm::set_kernel_set(saved);
  }
}

TEST(OptimSchedule, MatchesTorchSchedulers) {
  for (const auto& s : fixture()["schedules"]) {
    const mm::Config cfg = config_with({{"lr", s["lr"]}, {"steps", s["steps"]}});
    for (std::size_t i = 0; i < s["lrs"].size(); ++i) {
      const double want = s["lrs"][i];
      EXPECT_NEAR(cfg.lr_at(static_cast<int64_t>(i)), want, 1e-12 * std::max(want, 1e-3)) << s["lr"].dump() << " step " << i;
    }
  }
}

TEST(OptimSchedule, FormulasAtChosenSteps) {
  const double pi = std::acos(-1.0);
  // Cosine: warmup (s+1)/W * max, then min + (max-min)/2 * (1 + cos(pi * (s-W)/(T-W))).
  mm::Config c = config_with({{"lr", {{"schedule", "cosine"}, {"max", 0.01}, {"min", 0.001}, {"warmup", 100}}}, {"steps", 1100}});
  EXPECT_DOUBLE_EQ(c.lr_at(0), 0.01 / 100);
  EXPECT_DOUBLE_EQ(c.lr_at(49), 0.01 * 50 / 100);
  EXPECT_DOUBLE_EQ(c.lr_at(99), 0.01);
  EXPECT_DOUBLE_EQ(c.lr_at(100), 0.01);
  EXPECT_NEAR(c.lr_at(600), 0.0055, 1e-15);  // halfway: the mean of max and min
  EXPECT_NEAR(c.lr_at(350), 0.001 + 0.0045 * (1 + std::cos(pi / 4)), 1e-15);
  EXPECT_NEAR(c.lr_at(1099), 0.001 + 0.0045 * (1 + std::cos(pi * 999 / 1000)), 1e-15);
  EXPECT_DOUBLE_EQ(c.lr_at(1100), 0.001);
  EXPECT_DOUBLE_EQ(c.lr_at(5000), 0.001);  // past the end: stays at min
  // The step schedule with a warmup: the scheduled value times (s+1)/W.
  c = config_with({{"lr", {{"schedule", "step"}, {"values", {0.1, 0.01}}, {"boundaries", {5}}, {"warmup", 10}}}});
  EXPECT_DOUBLE_EQ(c.lr_at(0), 0.1 / 10);
  EXPECT_DOUBLE_EQ(c.lr_at(4), 0.1 * 5 / 10);
  EXPECT_DOUBLE_EQ(c.lr_at(5), 0.01 * 6 / 10);
  EXPECT_DOUBLE_EQ(c.lr_at(10), 0.01);
  // The lecture's schedule and a plain number are unchanged.
  c = mm::load_preset("lecture-batchnorm");
  EXPECT_EQ(c.lr_at(0), 0.1);
  EXPECT_EQ(c.lr_at(99999), 0.1);
  EXPECT_EQ(c.lr_at(100000), 0.01);
  c = config_with({{"lr", 0.001}});
  EXPECT_EQ(c.lr_at(0), 0.001);
  EXPECT_EQ(c.lr_at(123456), 0.001);
}

TEST(OptimClip, MatchesTorchClipGradNorm) {
  const json& fx = fixture();
  for (const auto& c : fx["clip"]) {
    const double scale = c["scale"];
    Params P(fx);
    json scaled = fx["grads"][2];
    for (auto& [name, v] : scaled.items())
      for (auto& x : v) x = static_cast<float>(x.get<float>() * static_cast<float>(scale));
    P.set(P.store.grads(), scaled);
    const double norm = mm::clip_grad_norm(P.store.grads(), c["max_norm"].get<double>());
    EXPECT_NEAR(norm, c["norm"].get<double>(), 1e-6 * norm);
    for (std::size_t i = 0; i < P.names.size(); ++i) {
      const float* got = P.store.grad(static_cast<int>(i));
      const auto& w = c["grads"][P.names[i]];
      for (std::size_t k = 0; k < w.size(); ++k)
        EXPECT_NEAR(got[k], w[k].get<double>(), 1e-6 * std::max(std::fabs(w[k].get<double>()), 1e-3)) << P.names[i] << k;
    }
    EXPECT_TRUE(P.padding_is_zero(P.store.grads()));
  }
}

TEST(OptimConfig, StringFormsGiveTorchDefaults) {
  mm::Config c = config_with({{"optimizer", "adam"}});
  EXPECT_EQ(c.optimizer.kind, mm::OptimizerKind::Adam);
  EXPECT_EQ(c.optimizer.beta1, 0.9);
  EXPECT_EQ(c.optimizer.beta2, 0.999);
  EXPECT_EQ(c.optimizer.eps, 1e-8);
  EXPECT_EQ(c.optimizer.weight_decay, 0.0);
  c = config_with({{"optimizer", {{"type", "adamw"}}}});
  EXPECT_EQ(c.optimizer.weight_decay, 0.01);
  c = config_with({{"optimizer", "rmsprop"}});
  EXPECT_EQ(c.optimizer.alpha, 0.99);
  EXPECT_EQ(c.optimizer.eps, 1e-8);
  EXPECT_EQ(c.optimizer.momentum, 0.0);
  c = config_with({{"optimizer", "sgd"}});
  EXPECT_TRUE(c.optimizer.is_plain_sgd());
  c = mm::load_preset("lecture-kaiming");
  EXPECT_TRUE(c.optimizer.is_plain_sgd());
  EXPECT_EQ(c.clip_grad_norm, 0.0);
}

TEST(OptimConfig, RoundTripsThroughToJson) {
  const std::vector<json> trains{
      {{"optimizer", "sgd"}},
      {{"optimizer", "adamw"}},
      {{"optimizer", {{"type", "sgd"}, {"momentum", 0.9}, {"nesterov", true}, {"weight_decay", 1e-4}}}},
      {{"optimizer", {{"type", "rmsprop"}, {"alpha", 0.9}, {"eps", 1e-6}, {"momentum", 0.5}, {"centered", true}}}},
      {{"optimizer", {{"type", "adam"}, {"betas", {0.8, 0.95}}, {"eps", 1e-7}, {"weight_decay", 0.1}, {"amsgrad", true}}}},
      {{"optimizer", {{"type", "adamw"}, {"weight_decay", 0.05}}}, {"clip_grad_norm", 1.0}},
      {{"lr", 0.001}},
      {{"lr", {{"schedule", "cosine"}, {"max", 0.01}, {"min", 0.0001}, {"warmup", 1000}}}},
      {{"lr", {{"schedule", "cosine"}, {"max", 0.01}}}},
      {{"lr", {{"schedule", "step"}, {"values", {0.1, 0.01}}, {"boundaries", {150000}}, {"warmup", 50}}}},
      {{"lr", {{"values", {0.1, 0.01}}, {"boundaries", {150000}}}}},
  };
  for (const auto& t : trains) {
    const mm::Config a = config_with(t);
    const json ja = a.to_json();
    const mm::Config b = mm::parse_config(ja, "round trip");
    EXPECT_EQ(b.to_json(), ja) << t.dump();
    EXPECT_EQ(b.optimizer, a.optimizer) << t.dump();
    for (int64_t s : {0, 1, 49, 50, 999, 1000, 150000, 199999}) EXPECT_EQ(b.lr_at(s), a.lr_at(s)) << t.dump();
    EXPECT_EQ(b.clip_grad_norm, a.clip_grad_norm);
  }
  // The lecture's presets still write the short forms they were written with.
  const json j = mm::load_preset("lecture-batchnorm").to_json();
  EXPECT_EQ(j["train"]["optimizer"], "sgd");
  EXPECT_EQ(j["train"]["lr"], (json{{"values", {0.1, 0.01}}, {"boundaries", {100000}}}));
}

TEST(OptimConfig, BadValuesNameTheField) {
  const auto expect_error = [](const json& train, const std::string& want) {
    const std::string e = parse_error(train);
    EXPECT_NE(e.find(want), std::string::npos) << "got: " << e << "\nwanted: " << want;
    EXPECT_EQ(e.find('\n'), std::string::npos) << e;
    EXPECT_EQ(e.rfind("test.json: ", 0), 0u) << e;
  };
  expect_error({{"optimizer", "adagrad"}}, "train.optimizer: unknown optimizer 'adagrad'; use sgd, rmsprop, adam or adamw");
  expect_error({{"optimizer", {{"type", "lion"}}}}, "train.optimizer.type: unknown optimizer 'lion'");
  expect_error({{"optimizer", {{"momentum", 0.9}}}}, "train.optimizer.type: missing");
  expect_error({{"optimizer", 3}}, "train.optimizer: must be a name");
  expect_error({{"optimizer", {{"type", "sgd"}, {"nesterov", true}}}},
               "train.optimizer.nesterov: needs \"momentum\" > 0 and \"dampening\": 0");
  expect_error({{"optimizer", {{"type", "sgd"}, {"nesterov", true}, {"momentum", 0.9}, {"dampening", 0.1}}}},
               "train.optimizer.nesterov: needs");
  expect_error({{"optimizer", {{"type", "adam"}, {"momentum", 0.9}}}},
               "train.optimizer.momentum: unknown field; allowed here: amsgrad, betas, eps, type, weight_decay");
  expect_error({{"optimizer", {{"type", "sgd"}, {"betas", {0.9, 0.99}}}}}, "train.optimizer.betas: unknown field");
  expect_error({{"optimizer", {{"type", "adam"}, {"beta", 0.9}}}}, "train.optimizer.beta: unknown field");
  expect_error({{"optimizer", {{"type", "adam"}, {"betas", {0.9}}}}}, "train.optimizer.betas: must be a list of two numbers");
  expect_error({{"optimizer", {{"type", "adam"}, {"betas", {0.9, 1.0}}}}}, "train.optimizer.betas[1]: must be below 1");
  expect_error({{"optimizer", {{"type", "adam"}, {"betas", {-0.1, 0.9}}}}}, "train.optimizer.betas[0]: must be between 0 and 1");
  expect_error({{"optimizer", {{"type", "adam"}, {"eps", 0}}}}, "train.optimizer.eps: must be > 0");
  expect_error({{"optimizer", {{"type", "adamw"}, {"weight_decay", -1}}}}, "train.optimizer.weight_decay: must be between 0 and");
  expect_error({{"optimizer", {{"type", "sgd"}, {"momentum", 1.5}}}}, "train.optimizer.momentum: must be between 0 and 1");
  expect_error({{"optimizer", {{"type", "rmsprop"}, {"alpha", "x"}}}}, "train.optimizer.alpha: must be a number");
  expect_error({{"lr", "fast"}}, "train.lr: must be a number or an object");
  expect_error({{"lr", {{"schedule", "linear"}, {"max", 1}}}},
               "train.lr.schedule: unknown schedule 'linear'; use step or cosine");
  expect_error({{"lr", {{"schedule", "cosine"}}}}, "train.lr.max: missing");
  expect_error({{"lr", {{"schedule", "cosine"}, {"max", 0.01}, {"min", 0.1}}}}, "train.lr.min: must not exceed train.lr.max");
  expect_error({{"lr", {{"schedule", "cosine"}, {"max", 0.01}, {"values", {0.1}}}}}, "train.lr.values: unknown field");
  expect_error({{"lr", {{"schedule", "cosine"}, {"max", 0.01}, {"warmup", -5}}}}, "train.lr.warmup: must be between 0 and");
  expect_error({{"lr", {{"values", {0.1}}, {"max", 0.01}}}},
               "train.lr.max: unknown field; allowed here: boundaries, schedule, values, warmup");
  expect_error({{"lr", {{"values", {0.1, 0.01}}}}}, "train.lr: 2 values need 1 boundaries, got 0");
  expect_error({{"clip_grad_norm", -1}}, "train.clip_grad_norm: must be between 0 and");
  expect_error({{"clip_grad_norm", true}}, "train.clip_grad_norm: must be a number");
  expect_error({{"clip", 1}}, "train.clip: unknown field");
}

// ---- through the Trainer, on the lecture's data ---------------------------------------------

// Records what observers see: the lr of each update, the gradients and values around step 0.
struct Recorder : mm::Observer {
  std::vector<double> lrs;
  mm::FloatBuf grads0, after0;
  void after_backward(mm::Trainer& t, int64_t step) override {
    if (step == 0) grads0 = t.model().params().grads();
  }
  void after_update(mm::Trainer& t, int64_t step, double lr) override {
    lrs.push_back(lr);
    if (step == 0) after0 = t.model().params().values();
  }
};

double std_of(const std::vector<double>& x) {
  double m = 0;
  for (double v : x) m += v;
  m /= static_cast<double>(x.size());
  double ss = 0;
  for (double v : x) ss += (v - m) * (v - m);
  return std::sqrt(ss / static_cast<double>(x.size() - 1));
}

// update:data is what Adam applied: at its first step the update is -lr * g / (|g| + eps)
// (m-hat = g, sqrt(v-hat) = |g|), about lr per element whatever the gradient's size, where SGD's
// would be -lr * g. And observers get the scheduled learning rate.
TEST(OptimTrainer, UpdateRatioReflectsTheAdamStep) {
  NEED_DATA();
  const mm::Config cfg =
      config_with({{"optimizer", "adam"}, {"steps", 20}, {"lr", {{"schedule", "cosine"}, {"max", 0.01}, {"warmup", 5}}}});
  mm::Model model(cfg, L->vocab.size());
  mm::TorchGenerator gen(cfg.seed);
  model.init(gen);
  mm::Trainer trainer(model, cfg, L->splits.train, gen);
  mm::DiagOptions opt;
  opt.every = 0;
  opt.ratio_dense_steps = 100;
  mm::DiagObserver diag(opt);
  Recorder rec;
  trainer.add_observer(&rec);
  trainer.add_observer(&diag);
  trainer.run();
  ASSERT_EQ(rec.lrs.size(), 20u);
  for (int64_t s = 0; s < 20; ++s) EXPECT_EQ(rec.lrs[s], cfg.lr_at(s)) << s;
  EXPECT_DOUBLE_EQ(rec.lrs[0], 0.01 / 5);
  ASSERT_FALSE(diag.ratios().empty());
  const mm::UpdateRatios& r0 = diag.ratios().front();
  ASSERT_EQ(r0.step, 0);
  const double lr = rec.lrs[0];
  const auto& infos = model.params().infos();
  std::size_t i = 0, checked = 0;
  for (const auto& p : infos) {
    if (!p.trainable) continue;
    const std::size_t idx = i++;
    std::vector<double> upd, data, sgd_upd;
    for (std::size_t k = 0; k < p.size(); ++k) {
      const double gk = rec.grads0[p.offset + k];
      upd.push_back(-lr * gk / (std::fabs(gk) + 1e-8));
      sgd_upd.push_back(-lr * gk);
      data.push_back(rec.after0[p.offset + k]);
    }
    const double sd_data = std_of(data), sd_upd = std_of(upd);
    if (!(sd_data > 0) || !(sd_upd > 0)) continue;
    ASSERT_LT(idx, r0.log10.size());
    const double want = std::log10(sd_upd / sd_data);
    EXPECT_NEAR(r0.log10[idx], want, 1e-3) << p.name;
    // Not SGD's: lr * grad is orders of magnitude smaller than Adam's normalized step here.
    EXPECT_GT(std::fabs(r0.log10[idx] - std::log10(std_of(sgd_upd) / sd_data)), 0.5) << p.name;
    ++checked;
  }
  EXPECT_GE(checked, 3u);
}

// inspect trains the first steps of the configured run: its learning rates are the configured
// schedule's (over train.steps), not a schedule squeezed into the inspected steps.
TEST(OptimTrainer, InspectUsesTheConfiguredSchedule) {
  NEED_DATA();
  const mm::Config cfg =
      config_with({{"optimizer", "adam"}, {"steps", 1000}, {"lr", {{"schedule", "cosine"}, {"max", 0.01}, {"min", 0.001}}}});
  const mm::Diagnosis r = mm::inspect_training(cfg, L->splits, L->vocab.size(), 10);
  EXPECT_DOUBLE_EQ(r.snapshot.lr, cfg.lr_at(10));
  EXPECT_GT(r.snapshot.lr, 0.0099);
  EXPECT_TRUE(r.snapshot.updated);
}

TEST(OptimTrainer, AdamTrainsLectureKaiming) {
  NEED_DATA();
  const mm::Config cfg = config_with({{"optimizer", {{"type", "adam"}}}, {"lr", 1e-3}, {"steps", 2000}});
  mm::Model model(cfg, L->vocab.size());
  const mm::TrainOutcome out = mm::train_and_evaluate(model, cfg, L->splits, {});
  ASSERT_FALSE(out.stats.diverged);
  EXPECT_EQ(out.stats.steps, 2000);
  EXPECT_LT(out.losses.train, out.stats.initial_loss - 0.5);
  EXPECT_LT(out.losses.val, out.stats.initial_loss - 0.5);
  RecordProperty("adam_val_loss", std::to_string(out.losses.val));
}

// Clipping with a max_norm far above the gradient norm changes nothing: the run is the
// lecture's plain SGD bit for bit.
TEST(OptimTrainer, LooseClippingLeavesSgdUnchanged) {
  NEED_DATA();
  mm::Config a = config_with({{"steps", 30}});
  mm::Config b = config_with({{"steps", 30}, {"clip_grad_norm", 1e6}});
  mm::Model ma(a, L->vocab.size()), mb(b, L->vocab.size());
  const auto ra = mm::train_and_evaluate(ma, a, L->splits, {});
  const auto rb = mm::train_and_evaluate(mb, b, L->splits, {});
  EXPECT_EQ(ra.stats.last_loss, rb.stats.last_loss);
  EXPECT_TRUE(ma.params().values() == mb.params().values());
  // A tight clip does change the run.
  mm::Config c = config_with({{"steps", 30}, {"clip_grad_norm", 0.01}});
  mm::Model mc(c, L->vocab.size());
  mm::TorchGenerator gen(c.seed);
  mc.init(gen);
  mm::Trainer t(mc, c, L->splits.train, gen);
  t.run();
  EXPECT_GT(t.last_grad_norm(), 0.01);
  EXPECT_FALSE(mc.params().values() == ma.params().values());
}

// `makemore train --optimizer NAME --lr X` overrides the config; the run folder's config.json
// and metrics say so, and a bad name is refused.
TEST(OptimCli, TrainOverridesOptimizerAndLr) {
  NEED_DATA();
  const mm_test::TempDir tmp("mm_optim");
  const std::filesystem::path& dir = tmp.path();
  const std::string bin = MM_BINARY, words = std::string(MM_SOURCE_DIR) + "/data/names.txt";
  const std::string run = (dir / "run").string();
  const std::string cmd = bin + " train -i " + words + " -o " + run +
                          " --preset lecture-kaiming --steps 30 --optimizer adamw --lr 0.002 --diag-every 0 --no-report -q > " +
                          (dir / "out.txt").string() + " 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  const json cfg = json::parse(mm_test::read_file(run + "/config.json"));
  EXPECT_EQ(cfg["train"]["optimizer"], "adamw");
  EXPECT_EQ(cfg["train"]["lr"], (json{{"values", {0.002}}, {"boundaries", json::array()}}));
  std::ifstream mf(run + "/metrics.jsonl");
  std::string line;
  int n = 0;
  while (std::getline(mf, line)) {
    if (json::parse(line).contains("val_loss")) continue;  // the validation curve's records
    EXPECT_EQ(json::parse(line)["lr"], 0.002) << line;
    ++n;
  }
  EXPECT_EQ(n, 30);
  const std::string bad =
      bin + " train -i " + words + " -o " + run + " --steps 1 --optimizer lion > " + (dir / "bad.txt").string() + " 2>&1";
  EXPECT_NE(std::system(bad.c_str()), 0);
  const std::string bad_out = mm_test::read_file(dir / "bad.txt");
  EXPECT_NE(bad_out.find("--optimizer"), std::string::npos) << bad_out;
}

}  // namespace

// ---- stopping and resuming --------------------------------------------------------------------

// Raises the stop flag after a given step's update, as Ctrl-C would between steps.
struct StopAfter : mm::Observer {
  int64_t at;
  std::atomic<bool>* flag;
  StopAfter(int64_t a, std::atomic<bool>* f) : at(a), flag(f) {}
  void after_update(mm::Trainer&, int64_t step, double) override {
    if (step == at) flag->store(true);
  }
};

// A run stopped part way, saved (parameters + train state) and continued in a fresh model,
// optimizer and generator gives the same bits as the run that never stopped: for every
// optimizer's state (momentum / Nesterov, centered RMSprop, Adam with amsgrad) and a cosine
// schedule with warmup.
TEST(OptimTrainer, StoppedAndResumedRunIsBitIdentical) {
  NEED_DATA();
  const json optimizers[] = {{{"type", "sgd"}, {"momentum", 0.9}, {"nesterov", true}},
                             {{"type", "rmsprop"}, {"centered", true}, {"momentum", 0.5}},
                             {{"type", "adam"}, {"amsgrad", true}, {"weight_decay", 0.01}}};
  for (const json& o : optimizers) {
    SCOPED_TRACE(o.dump());
    const mm::Config cfg =
        config_with({{"optimizer", o}, {"steps", 60}, {"lr", {{"schedule", "cosine"}, {"max", 0.01}, {"warmup", 10}}}});
    mm::Model straight(cfg, L->vocab.size());
    const mm::TrainOutcome full = mm::train_and_evaluate(straight, cfg, L->splits, {});
    ASSERT_EQ(full.stats.steps, 60);

    mm_test::TempDir dir;
    const std::string state = (dir.path() / "train_state.safetensors").string();
    std::atomic<bool> stop{false};
    StopAfter stopper(24, &stop);
    mm::Model first(cfg, L->vocab.size());
    mm::TrainControl c1;
    c1.stop = &stop;
    c1.on_trained = [&](mm::Trainer& t, const mm::TrainStats& st) {
      mm::save_train_state(state, t.optimizer(), t.generator(), t.model(), {st.steps, st.initial_loss});
    };
    const mm::TrainOutcome part = mm::train_and_evaluate(first, cfg, L->splits, {&stopper}, c1);
    EXPECT_TRUE(part.stats.interrupted);
    ASSERT_EQ(part.stats.steps, 25);
    EXPECT_FALSE(first.params().values() == straight.params().values());

    mm::Model second(cfg, L->vocab.size());  // fresh: the state carries the parameters
    mm::TrainControl c2;
    c2.resume_from = state;
    const mm::TrainOutcome rest = mm::train_and_evaluate(second, cfg, L->splits, {}, c2);
    EXPECT_FALSE(rest.stats.interrupted);
    EXPECT_EQ(rest.stats.steps, 60);
    EXPECT_EQ(rest.stats.initial_loss, full.stats.initial_loss);
    EXPECT_TRUE(second.params().values() == straight.params().values());
    EXPECT_EQ(rest.losses.val, full.losses.val);

    // A state that does not belong to this run is refused, naming the file: another network,
    // another optimizer.
    json deep = mm::load_preset("lecture-deep").to_json();
    deep["train"]["optimizer"] = o;
    const mm::Config deep_cfg = mm::parse_config(deep, "test.json");
    mm::Model third(deep_cfg, L->vocab.size());
    try {
      mm::train_and_evaluate(third, deep_cfg, L->splits, {}, c2);
      ADD_FAILURE() << "a lecture-kaiming state resumed lecture-deep";
    } catch (const mm::Error& e) {
      EXPECT_NE(std::string(e.what()).find(state), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("does not fit this config's model"), std::string::npos) << e.what();
    }
    mm::Config other = config_with({{"optimizer", o["type"] == "adam" ? "sgd" : "adam"}, {"steps", 60}});
    mm::Model fourth(other, L->vocab.size());
    try {
      mm::train_and_evaluate(fourth, other, L->splits, {}, c2);
      ADD_FAILURE() << "another optimizer's state was accepted";
    } catch (const mm::Error& e) {
      EXPECT_NE(std::string(e.what()).find("saved for optimizer"), std::string::npos) << e.what();
    }
  }
}

// ---- the update inside the backward ----------------------------------------------------------

// An observer that watches the backward (the default): the Trainer then updates after it.
struct WatchesBackward : mm::Observer {};

// Trains `steps` steps of cfg from seed 5, with or without an observer that watches the backward;
// returns the parameters, the running statistics and the optimizer's state.
struct Trained {
  mm::FloatBuf values, buffers, state[3];
  bool inside = false;
  int rows_reported = 0;  // Linears whose last backward reported their weight's rows
};
Trained train_steps(const mm::Config& cfg, const mm::Splits& splits, int vocab, bool watched) {
  mm::Model model(cfg, vocab);
  mm::TorchGenerator gen(5);
  model.init(gen);
  mm::Trainer trainer(model, cfg, splits.train, gen);
  WatchesBackward watch;
  if (watched) trainer.add_observer(&watch);
  Trained t;
  t.inside = trainer.updates_inside_backward(0);
  trainer.run();
  t.values = model.params().values();
  t.buffers = model.params().buffers();
  for (int i = 0; i < 3; ++i) t.state[i] = trainer.optimizer().state_buffer(i);
  for (const mm::Layer* l : model.all_layers())
    if (const auto* lin = dynamic_cast<const mm::Linear*>(l); lin && lin->weight_rows_reported()) ++t.rows_reported;
  return t;
}

// A network with wide weights (Linear(600, 600) with a bias, big-mlp's Linear(1000, 1000)), whose
// backward updates the weight's rows in blocks inside the Linear (gemm_linear_backward_rows).
json wide_network(const char* preset) {
  if (std::string(preset) != "wide-with-bias") return mm::load_preset(preset).to_json();
  json j = mm::load_preset("lecture-kaiming").to_json();
  j["model"]["layers"] = json::array({{{"type", "linear"}, {"out", 600}},
                                      {{"type", "tanh"}},
                                      {{"type", "linear"}, {"out", 600}},
                                      {{"type", "tanh"}},
                                      {{"type", "linear"}, {"out", "vocab"}}});
  return j;
}

// Each layer's parameters updated right after its backward (while their gradients are in cache)
// give the bits of one update after the whole backward: every optimizer rule, the token path,
// residual blocks, BatchNorm, LayerNorm, a flattening stack, wide weights updated in blocks of
// rows inside their Linear's backward, one and two threads. The run without an observer also
// keeps only the activations its backward reads (ForwardContext::scratch_outputs; the watching
// observer's run keeps all), so this holds those forwards to the same bits too.
TEST(OptimTrainer, UpdatingInsideTheBackwardGivesTheSameBits) {
  NEED_DATA();
  const json optimizers[] = {
      {{"optimizer", "sgd"}},
      {{"optimizer", {{"type", "sgd"}, {"momentum", 0.9}, {"nesterov", true}, {"weight_decay", 1e-3}}}},
      {{"optimizer", {{"type", "adam"}, {"weight_decay", 1e-3}}}, {"lr", 0.003}},
      {{"optimizer", {{"type", "adamw"}, {"amsgrad", true}}}, {"lr", 0.003}},
      {{"optimizer", {{"type", "rmsprop"}, {"momentum", 0.5}, {"centered", true}}}, {"lr", 0.001}},
  };
  for (const char* preset : {"lecture-batchnorm", "deep-residual-layernorm", "wavenet", "wide-with-bias", "big-mlp"}) {
    for (const json& opt : optimizers) {
      for (int threads : {1, 2}) {
        SCOPED_TRACE(fmt::format("{} {} threads {}", preset, opt.dump(), threads));
        json j = wide_network(preset);
        for (auto it = opt.begin(); it != opt.end(); ++it) j["train"][it.key()] = it.value();
        j["train"]["steps"] = 12;
        const mm::Config cfg = mm::parse_config(j, "test.json");
        const mm::Splits splits =
            cfg.block_size == 3 ? L->splits : mm::make_splits(L->splits.train_words, L->vocab, cfg.block_size, 42);
        mm::set_threads(threads);
        const int V = static_cast<int>(L->vocab.size());
        const Trained inside = train_steps(cfg, splits, V, false), after = train_steps(cfg, splits, V, true);
        mm::set_threads(1);
        EXPECT_TRUE(inside.inside);
        EXPECT_FALSE(after.inside);
        EXPECT_TRUE(inside.values == after.values);
        EXPECT_TRUE(inside.buffers == after.buffers);
        for (int i = 0; i < 3; ++i) EXPECT_TRUE(inside.state[i] == after.state[i]) << i;
        const bool wide = std::string(preset) == "wide-with-bias" || std::string(preset) == "big-mlp";
        if (wide && mm::gemm_backend() == mm::GemmBackend::Xsmm) {
          EXPECT_GT(inside.rows_reported, 0);
        }
        EXPECT_EQ(after.rows_reported, 0);
      }
    }
  }
}

// backward(done) passes the layers' output gradients through two scratch buffers and keeps none
// (Sequential::set_scratch_gradients); a plain backward after it keeps every layer's again, top
// level and inside a residual block, to the bit of a model that never used the scratch buffers.
TEST(OptimTrainer, APlainBackwardAfterAnUpdatingOneKeepsEveryLayersGradient) {
  NEED_DATA();
  const json j = {
      {"data", {{"block_size", 3}}},
      {"model",
       {{"n_embd", 10},
        {"layers",
         json::array({{{"type", "linear"}, {"out", 32}},
                      {{"type", "tanh"}},
                      {{"type", "residual"},
                       {"layers", json::array({{{"type", "linear"}, {"out", 32}}, {{"type", "layernorm"}}, {{"type", "tanh"}}})}},
                      {{"type", "linear"}, {"out", "vocab"}}})}}}};
  const mm::Config cfg = mm::parse_config(j, "test.json");
  const int V = static_cast<int>(L->vocab.size());
  mm::Model a(cfg, V), b(cfg, V);
  mm::TorchGenerator ga(3), gb(3);
  a.init(ga);
  b.init(gb);
  const mm::Examples& ex = L->splits.train;
  const std::vector<int32_t> xb(ex.x.begin(), ex.x.begin() + 32 * 3), yb(ex.y.begin(), ex.y.begin() + 32);
  auto step = [&](mm::Model& m, mm::TorchGenerator& g, bool updating) {
    m.forward(xb.data(), 32, mm::ForwardContext(mm::Mode::Train, &g));
    m.loss(yb.data());
    if (updating)
      m.backward([](std::size_t, std::size_t, std::size_t) {});  // no update: the next forward is the same
    else
      m.backward();
  };
  step(a, ga, true);
  step(a, ga, false);
  step(b, gb, false);
  auto same = [](const mm::Mat& x, const mm::Mat& y) { return x.rows() == y.rows() && x.cols() == y.cols() && x == y; };
  const mm::Sequential& sa = a.stack();
  const mm::Sequential& sb = b.stack();
  for (std::size_t i = 0; i + 1 < sa.layers().size(); ++i) EXPECT_TRUE(same(sa.dout(i), sb.dout(i))) << "layer " << i;
  const auto& ra = dynamic_cast<const mm::Residual&>(*sa.layers()[2]).branch();
  const auto& rb = dynamic_cast<const mm::Residual&>(*sb.layers()[2]).branch();
  for (std::size_t i = 0; i + 1 < ra.layers().size(); ++i) EXPECT_TRUE(same(ra.dout(i), rb.dout(i))) << "block layer " << i;
  ASSERT_GT(sa.dout(1).size(), 0);
  EXPECT_GT(sa.dout(1).cwiseAbs().maxCoeff(), 0.0f);  // a real gradient, not two empty Mats
}

// backward(done)'s ranges tile the parameters: each element of values() in exactly one range,
// the last layer's first and the embedding's last; clipping keeps the update after the backward.
TEST(OptimTrainer, UpdateRangesTileTheParameters) {
  NEED_DATA();
  for (const char* preset : {"lecture-kaiming", "lecture-batchnorm", "deep-residual-layernorm", "wavenet", "big-mlp"}) {
    SCOPED_TRACE(preset);
    const mm::Config cfg = mm::load_preset(preset);
    mm::Model model(cfg, static_cast<int>(L->vocab.size()));
    ASSERT_TRUE(model.updates_by_layer());
    mm::TorchGenerator gen(1);
    model.init(gen);
    const mm::Splits splits =
        cfg.block_size == 3 ? L->splits : mm::make_splits(L->splits.train_words, L->vocab, cfg.block_size, 42);
    const mm::Examples& ex = splits.train;
    const std::vector<int32_t> xb(ex.x.begin(), ex.x.begin() + 32 * cfg.block_size), yb(ex.y.begin(), ex.y.begin() + 32);
    model.forward(xb.data(), 32, mm::ForwardContext(mm::Mode::Train, &gen));
    model.loss(yb.data());
    std::vector<std::pair<std::size_t, std::size_t>> seen;
    model.backward([&](std::size_t k0, std::size_t k1, std::size_t) { seen.emplace_back(k0, k1); });
    ASSERT_FALSE(seen.empty());
    EXPECT_EQ(seen.back().first, 0u);  // the embedding's, last
    std::sort(seen.begin(), seen.end());
    std::size_t at = 0;
    for (const auto& [k0, k1] : seen) {
      EXPECT_EQ(k0, at);
      EXPECT_LT(k0, k1);
      at = k1;
    }
    EXPECT_EQ(at, model.params().values().size());
  }
  const mm::Config clipped = config_with({{"clip_grad_norm", 1.0}});
  mm::Model model(clipped, static_cast<int>(L->vocab.size()));
  mm::TorchGenerator gen(1);
  mm::Trainer trainer(model, clipped, L->splits.train, gen);
  EXPECT_FALSE(trainer.updates_inside_backward(0));
}
