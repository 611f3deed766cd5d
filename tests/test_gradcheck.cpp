// Finite-difference gradient checks for every layer and for each preset's whole network, plus
// the backward overwrite contract, softmax cross-entropy at extreme logits, the BatchNorm
// running-statistics updates and Model::calibrate. Method as dlib's test_layer / flashlight:
// a scalar objective L = <out, R> with a fixed random projection R, analytic gradients from
// backward(R), numeric ones by central differences, compared with a mixed tolerance.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>
#include <numeric>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "makemore/config.h"
#include "makemore/layer_kinds.h"
#include "makemore/layers.h"
#include "makemore/model.h"
#include "makemore/presets.h"

namespace {

using mm::Mat;
using mm::Mode;

// ---- the checker ---------------------------------------------------------------------------

struct Tolerance {
  double atol = 1e-3;
  double rtol = 2e-2;
};

struct Mismatch {
  std::string what;
  std::size_t index = 0;
  double analytic = 0, numeric = 0;
};

struct CheckReport {
  std::size_t checked = 0;
  std::vector<Mismatch> mismatches;
  double max_abs_err = 0;
  double worst = 0;  // max over entries of |a - n| / allowed: how much of the tolerance was used
  bool ok() const { return checked > 0 && mismatches.empty(); }
};

std::ostream& operator<<(std::ostream& os, const CheckReport& r) {
  os << r.checked << " entries checked, " << r.mismatches.size() << " mismatches, max |a - n| " << r.max_abs_err << ", worst "
     << r.worst << " of the tolerance";
  for (std::size_t i = 0; i < std::min<std::size_t>(r.mismatches.size(), 5); ++i) {
    const auto& m = r.mismatches[i];
    os << "\n  " << m.what << "[" << m.index << "]: analytic " << m.analytic << ", numeric " << m.numeric;
  }
  return os;
}

struct CheckOptions {
  double step = 1e-2;             // h = step * max(1, |v|)
  std::size_t max_entries = 200;  // per tensor; a random subset beyond that
  Tolerance tol;
};

// Central difference of objective() in the float *p, compared with `analytic`. The denominator
// is the difference of the two float values actually set, not 2h, so rounding v +- h to float
// costs nothing; the objective is accumulated in double from the layer's float outputs.
void check_entry(float* p, double analytic, const std::function<double()>& objective, const std::string& what, std::size_t index,
                 const CheckOptions& opt, CheckReport& report) {
  const float v = *p;
  const float h = static_cast<float>(opt.step * std::max(1.0, std::abs(static_cast<double>(v))));
  const float vp = v + h, vm = v - h;
  *p = vp;
  const double lp = objective();
  *p = vm;
  const double lm = objective();
  *p = v;
  const double numeric = (lp - lm) / (static_cast<double>(vp) - static_cast<double>(vm));
  const double err = std::abs(analytic - numeric);
  const double allowed = opt.tol.atol + opt.tol.rtol * std::max(std::abs(analytic), std::abs(numeric));
  report.max_abs_err = std::max(report.max_abs_err, err);
  report.worst = std::max(report.worst, err / allowed);
  ++report.checked;
  if (!(err <= allowed)) report.mismatches.push_back({what, index, analytic, numeric});
}

// All indices when n <= max_entries, else a random subset of max_entries distinct ones.
std::vector<std::size_t> pick(std::size_t n, std::size_t max_entries, std::mt19937& rng) {
  std::vector<std::size_t> idx(n);
  std::iota(idx.begin(), idx.end(), std::size_t{0});
  if (n > max_entries) {
    std::shuffle(idx.begin(), idx.end(), rng);
    idx.resize(max_entries);
  }
  return idx;
}

Mat randn(Eigen::Index rows, Eigen::Index cols, std::mt19937& rng, float scale = 1.0f) {
  std::normal_distribution<float> nd(0.0f, scale);
  Mat m(rows, cols);
  for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = nd(rng);
  return m;
}

double dot(const Mat& a, const Mat& b) {
  double s = 0;
  for (Eigen::Index i = 0; i < a.size(); ++i) s += static_cast<double>(a.data()[i]) * static_cast<double>(b.data()[i]);
  return s;
}

// Checks every trainable parameter in `store` (a layer and its own store, so a Sequential's
// children are covered too) and, if check_input, dL/dx, for L = <layer(x), R>. Every forward
// draws from a fresh copy of one generator, so a stochastic layer (Dropout) keeps one mask
// through the whole check.
CheckReport check_layer(mm::Layer& layer, mm::ParamStore& store, Mat& x, Mode mode, bool check_input, std::mt19937& rng,
                        const CheckOptions& opt = {}) {
  const mm::TorchGenerator draws(20260101);
  const auto forward = [&] {
    mm::TorchGenerator gen = draws;
    layer.forward(x, mm::ForwardContext(mode, &gen));
  };
  forward();
  const Mat R = randn(layer.out().rows(), layer.out().cols(), rng);
  Mat dx;
  layer.backward(R, check_input ? &dx : nullptr);
  const mm::FloatBuf analytic = store.grads();  // copied: the probes below re-run forward
  const auto objective = [&] {
    forward();
    return dot(layer.out(), R);
  };
  CheckReport report;
  for (std::size_t id = 0; id < store.infos().size(); ++id) {
    const auto& info = store.info(static_cast<int>(id));
    if (!info.trainable) continue;
    float* values = store.data(static_cast<int>(id));
    for (std::size_t k : pick(info.size(), opt.max_entries, rng))
      check_entry(values + k, analytic[info.offset + k], objective, info.name, k, opt, report);
  }
  if (check_input) {
    const Mat dx_copy = dx;
    for (std::size_t k : pick(static_cast<std::size_t>(x.size()), opt.max_entries, rng))
      check_entry(x.data() + k, dx_copy.data()[k], objective, "input", k, opt, report);
  }
  forward();  // leave the caches as backward expects them
  return report;
}

// ---- standalone layers ---------------------------------------------------------------------

// A layer built into its own store, with random parameters and running statistics away from
// their defaults (gamma near 1, running var / std in [1, 1.5)) so every term is exercised.
struct Built {
  mm::ParamStore store;
  std::unique_ptr<mm::Layer> layer;

  Built(std::unique_ptr<mm::Layer> l, int in_time, int in_features, std::mt19937& rng) : layer(std::move(l)) {
    layer->build(in_time, in_features, store, "layers.0.");
    store.finalize();
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::uniform_real_distribution<float> ud(0.0f, 1.0f);
    for (std::size_t id = 0; id < store.infos().size(); ++id) {
      const auto& info = store.info(static_cast<int>(id));
      float* d = store.data(static_cast<int>(id));
      const bool gamma = info.name.ends_with("gamma"), running = info.name.ends_with("running_mean");
      const bool spread = info.name.ends_with("running_var") || info.name.ends_with("running_std");
      for (std::size_t k = 0; k < info.size(); ++k) {
        if (gamma)
          d[k] = 1.0f + 0.3f * nd(rng);
        else if (running)
          d[k] = 0.3f * nd(rng);
        else if (spread)
          d[k] = 1.0f + 0.5f * ud(rng);
        else
          d[k] = 0.5f * nd(rng);
      }
    }
  }
  Built(const Built&) = delete;
  Built& operator=(const Built&) = delete;
};

mm::InitSpec zeros() { return mm::InitSpec{mm::InitSpec::Kind::Zeros}; }

mm::BatchNormOptions lecture_bn() {  // notebook cells 6-10
  mm::BatchNormOptions o;
  o.eps = 0.0;
  o.momentum = 0.001;
  o.unbiased = true;
  o.running_std = true;
  return o;
}

mm::BatchNormOptions class_bn() {  // the lecture's BatchNorm1d class
  mm::BatchNormOptions o;
  o.eps = 1e-5;
  o.momentum = 0.1;
  o.unbiased = true;
  o.running_std = false;
  return o;
}

TEST(GradCheck, LinearWithBias) {
  std::mt19937 rng(1);
  Built b(std::make_unique<mm::Linear>(4, true, zeros(), zeros()), 1, 6, rng);
  Mat x = randn(8, 6, rng);
  const CheckReport r = check_layer(*b.layer, b.store, x, Mode::Train, true, rng);
  EXPECT_TRUE(r.ok()) << r;
  EXPECT_EQ(r.checked, 6u * 4u + 4u + 8u * 6u);
}

TEST(GradCheck, LinearWithoutBias) {
  std::mt19937 rng(2);
  Built b(std::make_unique<mm::Linear>(5, false, zeros(), zeros()), 1, 7, rng);
  Mat x = randn(8, 7, rng);
  const CheckReport r = check_layer(*b.layer, b.store, x, Mode::Train, true, rng);
  EXPECT_TRUE(r.ok()) << r;
  EXPECT_EQ(r.checked, 7u * 5u + 8u * 7u);
}

struct BnCase {
  const char* name;
  mm::BatchNormOptions opt;
  Mode mode;
};

TEST(GradCheck, BatchNorm1dAllForms) {
  const BnCase cases[] = {{"lecture form, train", lecture_bn(), Mode::Train},
                          {"lecture form, eval", lecture_bn(), Mode::Eval},
                          {"class form, train", class_bn(), Mode::Train},
                          {"class form, eval", class_bn(), Mode::Eval}};
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    std::mt19937 rng(3);
    Built b(std::make_unique<mm::BatchNorm1d>(c.opt), 1, 5, rng);
    Mat x = randn(8, 5, rng, 2.0f);
    x.rowwise() += randn(1, 5, rng).row(0);  // a non-zero mean per feature
    const CheckReport r = check_layer(*b.layer, b.store, x, c.mode, true, rng);
    EXPECT_TRUE(r.ok()) << r;
    EXPECT_EQ(r.checked, 2u * 5u + 8u * 5u);
  }
}

TEST(GradCheck, Tanh) {
  std::mt19937 rng(4);
  Built b(std::make_unique<mm::Tanh>(), 1, 6, rng);
  Mat x = randn(8, 6, rng, 1.5f);
  const CheckReport r = check_layer(*b.layer, b.store, x, Mode::Train, true, rng);
  EXPECT_TRUE(r.ok()) << r;
  EXPECT_EQ(r.checked, 8u * 6u);
}

TEST(GradCheck, Flatten) {
  for (int n : {0, 2}) {  // the lecture's view(B, -1), and FlattenConsecutive(2)
    SCOPED_TRACE(n);
    std::mt19937 rng(5);
    Built b(std::make_unique<mm::Flatten>(n), 4, 3, rng);
    Mat x = randn(8 * 4, 3, rng);
    const CheckReport r = check_layer(*b.layer, b.store, x, Mode::Train, true, rng);
    EXPECT_TRUE(r.ok()) << r;
    EXPECT_EQ(b.layer->out().cols(), n == 0 ? 12 : 6);
  }
}

TEST(GradCheck, EmbeddingParameters) {
  std::mt19937 rng(6);
  Built b(std::make_unique<mm::Embedding>(27, 10, zeros()), 1, 3, rng);
  Mat tokens(8, 3);
  std::uniform_int_distribution<int> tok(0, 26);
  for (Eigen::Index i = 0; i < tokens.size(); ++i) tokens.data()[i] = static_cast<float>(tok(rng));
  tokens(0, 0) = tokens(1, 2) = 5;  // a repeated token: its gradient is a sum
  const CheckReport r = check_layer(*b.layer, b.store, tokens, Mode::Train, false, rng);
  EXPECT_TRUE(r.ok()) << r;
  EXPECT_EQ(r.checked, 200u);  // 270 entries: the random subset
}

TEST(GradCheck, Sequential) {
  for (Mode mode : {Mode::Train, Mode::Eval}) {
    SCOPED_TRACE(mode == Mode::Train ? "train" : "eval");
    std::mt19937 rng(7);
    auto seq = std::make_unique<mm::Sequential>();
    seq->add(std::make_unique<mm::Linear>(40, false, zeros(), zeros()));
    seq->add(std::make_unique<mm::BatchNorm1d>(class_bn()));
    seq->add(std::make_unique<mm::Tanh>());
    seq->add(std::make_unique<mm::Linear>(27, true, zeros(), zeros()));
    Built b(std::move(seq), 1, 12, rng);
    Mat x = randn(8, 12, rng);
    const CheckReport r = check_layer(*b.layer, b.store, x, mode, true, rng);
    EXPECT_TRUE(r.ok()) << r;
    // 480 + 40 + 40 + 1080 + 27 parameters (two tensors subsampled) and 96 inputs
    EXPECT_EQ(r.checked, 200u + 40u + 40u + 200u + 27u + 96u);
  }
}

// ---- the layers beyond the lecture ---------------------------------------------------------

mm::NormOptions norm(int groups, bool affine) {
  mm::NormOptions o;
  o.groups = groups;
  o.affine = affine;
  return o;
}

// Values away from ReLU's kink at 0, where a central difference straddles it.
Mat away_from_zero(Mat x, float gap = 0.05f) {
  for (Eigen::Index i = 0; i < x.size(); ++i) {
    float& v = x.data()[i];
    if (std::abs(v) < gap) v = v < 0 ? v - gap : v + gap;
  }
  return x;
}

TEST(GradCheck, LayerNorm) {
  for (bool affine : {true, false}) {
    for (Mode mode : {Mode::Train, Mode::Eval}) {
      SCOPED_TRACE(std::string(affine ? "affine" : "plain") + (mode == Mode::Train ? ", train" : ", eval"));
      std::mt19937 rng(21);
      Built b(std::make_unique<mm::LayerNorm>(norm(1, affine)), 1, 10, rng);
      Mat x = randn(6, 10, rng, 2.0f);
      x.col(3).array() += 3.0f;  // a mean far from 0
      const CheckReport r = check_layer(*b.layer, b.store, x, mode, true, rng);
      EXPECT_TRUE(r.ok()) << r;
      EXPECT_EQ(r.checked, (affine ? 20u : 0u) + 60u);
    }
  }
}

TEST(GradCheck, GroupNorm) {
  for (int groups : {1, 4, 12}) {
    for (bool affine : {true, false}) {
      SCOPED_TRACE(std::to_string(groups) + (affine ? " groups, affine" : " groups, plain"));
      std::mt19937 rng(22);
      mm::NormOptions o = norm(groups, affine);
      if (groups == 12) o.eps = 0.1;  // one feature per group: (x - mean) = 0, all from eps
      Built b(std::make_unique<mm::GroupNorm>(o), 1, 12, rng);
      Mat x = randn(5, 12, rng, 1.5f);
      const CheckReport r = check_layer(*b.layer, b.store, x, Mode::Train, true, rng);
      EXPECT_TRUE(r.ok()) << r;
      EXPECT_EQ(r.checked, (affine ? 24u : 0u) + 60u);
    }
  }
}

TEST(GradCheck, ReLU) {
  std::mt19937 rng(23);
  Built b(std::make_unique<mm::ReLU>(), 1, 6, rng);
  Mat x = away_from_zero(randn(8, 6, rng));
  const CheckReport r = check_layer(*b.layer, b.store, x, Mode::Train, true, rng);
  EXPECT_TRUE(r.ok()) << r;
  EXPECT_EQ(r.checked, 48u);
  b.layer->forward(x, Mode::Train);
  EXPECT_EQ((b.layer->out().array() == 0.0f).count(), (x.array() < 0.0f).count());
}

TEST(GradCheck, GELUBothForms) {
  for (bool tanh_approx : {false, true}) {
    SCOPED_TRACE(tanh_approx ? "tanh" : "erf");
    std::mt19937 rng(24);
    Built b(std::make_unique<mm::GELU>(tanh_approx), 1, 6, rng);
    Mat x = randn(8, 6, rng, 2.0f);
    const CheckReport r = check_layer(*b.layer, b.store, x, Mode::Train, true, rng);
    EXPECT_TRUE(r.ok()) << r;
    EXPECT_EQ(r.checked, 48u);
  }
}

std::unique_ptr<mm::Residual> residual_linear_layernorm_tanh(int width) {
  auto r = std::make_unique<mm::Residual>();
  r->add(std::make_unique<mm::Linear>(width, true, zeros(), zeros()));
  r->add(std::make_unique<mm::LayerNorm>(norm(1, true)));
  r->add(std::make_unique<mm::Tanh>());
  return r;
}

TEST(GradCheck, ResidualAroundLinearLayerNormTanh) {
  std::mt19937 rng(25);
  Built b(residual_linear_layernorm_tanh(8), 1, 8, rng);
  EXPECT_GE(b.store.find("layers.0.layers.0.weight"), 0);
  EXPECT_GE(b.store.find("layers.0.layers.1.gamma"), 0);
  Mat x = randn(6, 8, rng);
  const CheckReport r = check_layer(*b.layer, b.store, x, Mode::Train, true, rng);
  EXPECT_TRUE(r.ok()) << r;
  EXPECT_EQ(r.checked, 64u + 8u + 8u + 8u + 48u);
}

TEST(GradCheck, NestedResiduals) {
  for (Mode mode : {Mode::Train, Mode::Eval}) {
    SCOPED_TRACE(mode == Mode::Train ? "train" : "eval");
    std::mt19937 rng(26);
    // x + [Linear, BatchNorm1d, x' + [GroupNorm(2), GELU, x'' + [Linear, LayerNorm, Tanh]], ReLU-free]
    auto inner = std::make_unique<mm::Residual>();
    inner->add(std::make_unique<mm::GroupNorm>(norm(2, true)));
    inner->add(std::make_unique<mm::GELU>(true));
    inner->add(residual_linear_layernorm_tanh(8));
    auto outer = std::make_unique<mm::Residual>();
    outer->add(std::make_unique<mm::Linear>(8, false, zeros(), zeros()));
    outer->add(std::make_unique<mm::BatchNorm1d>(class_bn()));
    outer->add(std::move(inner));
    Built b(std::move(outer), 1, 8, rng);
    EXPECT_GE(b.store.find("layers.0.layers.2.layers.2.layers.1.beta"), 0);
    Mat x = randn(6, 8, rng);
    const CheckReport r = check_layer(*b.layer, b.store, x, mode, true, rng);
    EXPECT_TRUE(r.ok()) << r;
    EXPECT_EQ(r.checked, 64u + 16u + 16u + 64u + 8u + 16u + 48u);
  }
}

TEST(GradCheck, NewLayersOverwriteGradients) {
  std::mt19937 rng(27);
  std::vector<std::unique_ptr<Built>> layers;
  layers.push_back(std::make_unique<Built>(std::make_unique<mm::LayerNorm>(norm(1, true)), 1, 6, rng));
  layers.push_back(std::make_unique<Built>(std::make_unique<mm::GroupNorm>(norm(3, true)), 1, 6, rng));
  layers.push_back(std::make_unique<Built>(residual_linear_layernorm_tanh(6), 1, 6, rng));
  for (auto& b : layers) {
    SCOPED_TRACE(b->layer->describe());
    Mat x = randn(8, 6, rng);
    b->layer->forward(x, Mode::Train);
    const Mat R = randn(8, 6, rng);
    Mat dx1, dx2;
    b->layer->backward(R, &dx1);
    const mm::FloatBuf first = b->store.grads();
    b->layer->backward(R, &dx2);
    EXPECT_EQ(b->store.grads(), first) << "a second backward must not accumulate";
    for (int id = 0; id < static_cast<int>(b->store.infos().size()); ++id)
      if (b->store.info(id).trainable) std::fill_n(b->store.grad(id), b->store.info(id).size(), 1e3f);
    b->layer->backward(R, nullptr);
    EXPECT_EQ(b->store.grads(), first) << "backward must not read the old gradient";
    EXPECT_TRUE(dx1 == dx2);
  }
}

// ---- every registered kind -----------------------------------------------------------------

// Each kind's registry entry lists option sets (LayerKind::examples); each is parsed as a
// config layer and built, on 8 examples x 2 positions x 6 features, then checked against
// finite differences in training and in evaluation, and held to the overwrite contract. A kind
// added to the registry is checked here without a line of this file changing.
TEST(GradCheck, EveryRegisteredKind) {
  std::size_t examples = 0;
  for (const mm::LayerKind* kind : mm::layer_kinds()) {
    EXPECT_FALSE(kind->examples.empty()) << kind->name << ": its registry entry lists no examples to check";
    for (const std::string& text : kind->examples) {
      nlohmann::json j = nlohmann::json::parse(text);
      j["type"] = kind->name;
      const mm::LayerSpec spec = mm::parse_layer_spec(j, "example", "registry");
      for (Mode mode : {Mode::Train, Mode::Eval}) {
        SCOPED_TRACE(j.dump() + (mode == Mode::Train ? ", train" : ", eval"));
        std::mt19937 rng(31);
        Built b(mm::make_layer(spec, 27, "example"), 2, 6, rng);
        Mat x = away_from_zero(randn(16, 6, rng, 1.5f));  // ReLU's kink at 0 out of the differences' reach
        const CheckReport r = check_layer(*b.layer, b.store, x, mode, true, rng);
        EXPECT_TRUE(r.ok()) << r;
        // backward overwrites: a second one, or one over poisoned gradients, gives the same
        const Mat R = randn(b.layer->out().rows(), b.layer->out().cols(), rng);
        Mat dx1, dx2;
        b.layer->backward(R, &dx1);
        const mm::FloatBuf first = b.store.grads();
        for (int id = 0; id < static_cast<int>(b.store.infos().size()); ++id)
          if (b.store.info(id).trainable) std::fill_n(b.store.grad(id), b.store.info(id).size(), 1e3f);
        b.layer->backward(R, &dx2);
        EXPECT_EQ(b.store.grads(), first) << "backward must not read or add to the old gradient";
        EXPECT_TRUE(dx1 == dx2);
      }
      ++examples;
    }
  }
  EXPECT_GE(examples, mm::layer_kinds().size());
}

// ---- the checker can fail ------------------------------------------------------------------

// Linear whose weight gradient is 5% too large: a subtle error the tolerance must not hide.
class ScaledGradLinear : public mm::Linear {
 public:
  using mm::Linear::Linear;
  void backward(const Mat& dout, Mat* dx) override {
    mm::Linear::backward(dout, dx);
    store_->gradient(weight_id()) *= 1.05f;
  }
};

// Tanh with the classic slip dx = dout * (1 - out) instead of (1 - out^2).
class WrongTanh : public mm::Tanh {
 public:
  void backward(const Mat& dout, Mat* dx) override {
    if (!dx) return;
    dx->resize(dout.rows(), dout.cols());
    dx->array() = dout.array() * (1.0f - out_.array());
  }
};

TEST(GradCheck, ReportsWrongGradients) {
  std::mt19937 rng(8);
  {
    Built b(std::make_unique<ScaledGradLinear>(4, true, zeros(), zeros()), 1, 6, rng);
    Mat x = randn(8, 6, rng);
    const CheckReport r = check_layer(*b.layer, b.store, x, Mode::Train, true, rng);
    EXPECT_FALSE(r.ok());
    std::size_t weight_mismatches = 0;
    for (const auto& m : r.mismatches) {
      EXPECT_EQ(m.what, "layers.0.weight");  // bias and input gradients are still right
      weight_mismatches += m.what == "layers.0.weight";
    }
    EXPECT_GT(weight_mismatches, 12u);  // most of the 24 entries
  }
  {
    Built b(std::make_unique<WrongTanh>(), 1, 6, rng);
    Mat x = randn(8, 6, rng);
    const CheckReport r = check_layer(*b.layer, b.store, x, Mode::Train, true, rng);
    EXPECT_FALSE(r.ok());
    EXPECT_GT(r.mismatches.size(), 24u);
  }
}

// ---- the overwrite contract ----------------------------------------------------------------

TEST(GradCheck, BackwardOverwritesGradients) {
  std::mt19937 rng(9);
  std::vector<std::unique_ptr<Built>> layers;
  layers.push_back(std::make_unique<Built>(std::make_unique<mm::Linear>(4, true, zeros(), zeros()), 1, 6, rng));
  layers.push_back(std::make_unique<Built>(std::make_unique<mm::BatchNorm1d>(lecture_bn()), 1, 6, rng));
  layers.push_back(std::make_unique<Built>(std::make_unique<mm::BatchNorm1d>(class_bn()), 1, 6, rng));
  layers.push_back(std::make_unique<Built>(std::make_unique<mm::Embedding>(27, 10, zeros()), 1, 6, rng));
  for (auto& b : layers) {
    SCOPED_TRACE(b->layer->describe());
    Mat x = randn(8, 6, rng);
    if (dynamic_cast<const mm::Embedding*>(b->layer.get())) x = x.array().abs().floor().min(26.0f);  // token indices
    b->layer->forward(x, Mode::Train);
    const Mat R = randn(b->layer->out().rows(), b->layer->out().cols(), rng);
    Mat dx1, dx2;
    b->layer->backward(R, &dx1);
    const mm::FloatBuf first = b->store.grads();
    b->layer->backward(R, &dx2);
    EXPECT_EQ(b->store.grads(), first) << "a second backward must not accumulate";
    for (int id = 0; id < static_cast<int>(b->store.infos().size()); ++id)  // stale garbage
      if (b->store.info(id).trainable) std::fill_n(b->store.grad(id), b->store.info(id).size(), 1e3f);
    b->layer->backward(R, nullptr);
    EXPECT_EQ(b->store.grads(), first) << "backward must not read the old gradient";
    EXPECT_TRUE(dx1 == dx2) << "dx must not depend on the previous call";
  }

  mm::Model model(mm::load_preset("lecture-deep"), 27);
  mm::TorchGenerator gen(7);
  model.init(gen);
  const std::vector<int32_t> xs{1, 2, 3, 0, 0, 5, 7, 8, 9, 26, 0, 1}, ys{4, 5, 6, 7};
  model.forward(xs.data(), 4, Mode::Train);
  model.loss(ys.data());
  model.backward();
  const mm::FloatBuf first = model.params().grads();
  model.backward();
  EXPECT_EQ(model.params().grads(), first);
}

// ---- each preset's whole network -----------------------------------------------------------

// The six lecture networks; kept explicit so the test names read well, and checked against
// the embedded list so a new preset cannot be left out.
const char* const kPresets[] = {"lecture-original",  "lecture-fix-softmax", "lecture-fix-tanh",        "lecture-kaiming",
                                "lecture-batchnorm", "lecture-deep",        "deep-residual-layernorm", "big-mlp",
                                "wavenet",           "video-original",      "video-fix-softmax",       "video-fix-tanh"};

TEST(GradCheckModel, CoversEveryPreset) {
  std::vector<std::string> embedded, listed(std::begin(kPresets), std::end(kPresets));
  for (const auto& p : mm::embedded_presets()) embedded.emplace_back(p.name);
  std::sort(embedded.begin(), embedded.end());
  std::sort(listed.begin(), listed.end());
  EXPECT_EQ(embedded, listed);
}

// L = the model's cross-entropy summed over the batch (B times the mean the model reports, so
// gradients are O(1) like the layer checks'), recomputed in double from the float logits.
CheckReport check_model(mm::Model& model, const std::vector<int32_t>& x, const std::vector<int32_t>& y, Mode mode,
                        std::mt19937& rng, const CheckOptions& opt) {
  const int batch = static_cast<int>(y.size());
  model.forward(x.data(), batch, mode);
  model.loss(y.data());
  model.backward();
  const mm::FloatBuf analytic = model.params().grads();
  const auto objective = [&] {
    model.forward(x.data(), batch, mode);
    return mm::SoftmaxCrossEntropy::sum_loss(model.logits(), y.data());
  };
  CheckReport report;
  auto& store = model.params();
  for (std::size_t id = 0; id < store.infos().size(); ++id) {
    const auto& info = store.info(static_cast<int>(id));
    if (!info.trainable) continue;
    float* values = store.data(static_cast<int>(id));
    for (std::size_t k : pick(info.size(), opt.max_entries, rng))
      check_entry(values + k, batch * static_cast<double>(analytic[info.offset + k]), objective, info.name, k, opt, report);
  }
  return report;
}

class GradCheckPreset : public ::testing::TestWithParam<const char*> {};

TEST_P(GradCheckPreset, WholeNetwork) {
  const mm::Config cfg = mm::load_preset(GetParam());
  const bool has_bn =
      std::any_of(cfg.layers.begin(), cfg.layers.end(), [](const mm::LayerSpec& s) { return s.kind->traits.running_stats; });
  std::mt19937 rng(10);
  std::uniform_int_distribution<int> tok(0, 26);
  std::vector<int32_t> x(8 * static_cast<std::size_t>(cfg.block_size)), y(8);
  for (auto& t : x) t = tok(rng);
  for (auto& t : y) t = tok(rng);
  for (Mode mode : {Mode::Train, Mode::Eval}) {
    if (mode == Mode::Eval && !has_bn) continue;  // without BatchNorm the modes are the same
    SCOPED_TRACE(mode == Mode::Train ? "train" : "eval");
    mm::Model model(cfg, 27);
    mm::TorchGenerator gen(cfg.seed);
    model.init(gen);
    CheckOptions opt;
    opt.max_entries = 24;  // per tensor: every tensor is covered, ~100-450 entries a network
    // Some gradients here are small (W1 behind the 0.01-scaled output layer is ~1e-3), so the
    // absolute part is tighter than the layers' 1e-3: the measured noise is ~2e-5 at a loss
    // near ln 27. The float noise grows with the logits, and so with the loss: lecture-original
    // (loss ~27, logits ~20) gets a proportionally larger absolute tolerance.
    model.forward(x.data(), 8, mode);
    const double mean_loss = model.loss(y.data());
    opt.tol.atol = 1e-4 * std::max(1.0, mean_loss / std::log(27.0));
    const CheckReport r = check_model(model, x, y, mode, rng, opt);
    EXPECT_TRUE(r.ok()) << r;
  }
}

std::string preset_test_name(const ::testing::TestParamInfo<const char*>& info) {
  std::string s = info.param;
  std::replace(s.begin(), s.end(), '-', '_');
  return s;
}

INSTANTIATE_TEST_SUITE_P(GradCheck, GradCheckPreset, ::testing::ValuesIn(kPresets), preset_test_name);

// A deep network of the new layers, from a config: residual blocks with LayerNorm, GELU,
// GroupNorm and a nested residual, Xavier weights.
TEST(GradCheckModel, ResidualLayerNormConfig) {
  const nlohmann::json block = {
      {"type", "residual"},
      {"layers",
       {{{"type", "linear"}, {"out", 24}, {"weight_init", {{"kind", "xavier-normal"}, {"gain", "tanh"}}}},
        {{"type", "layernorm"}},
        {{"type", "tanh"}},
        {{"type", "residual"}, {"layers", {{{"type", "groupnorm"}, {"groups", 4}}, {{"type", "gelu"}}}}}}}};
  const nlohmann::json j = {
      {"data", {{"block_size", 3}}},
      {"model",
       {{"n_embd", 8},
        {"layers",
         {{{"type", "linear"}, {"out", 24}, {"weight_init", "xavier-uniform"}},
          {{"type", "layernorm"}},
          block,
          {{"type", "relu"}},
          block,
          {{"type", "linear"}, {"out", "vocab"}, {"weight_init", {{"kind", "normal"}, {"scale", 0.1}}}}}}}}};
  const mm::Config cfg = mm::parse_config(j, "residual.json");
  std::mt19937 rng(28);
  std::uniform_int_distribution<int> tok(0, 26);
  std::vector<int32_t> x(8 * 3), y(8);
  for (auto& t : x) t = tok(rng);
  for (auto& t : y) t = tok(rng);
  mm::Model model(cfg, 27);
  mm::TorchGenerator gen(cfg.seed);
  model.init(gen);
  CheckOptions opt;
  opt.max_entries = 24;
  opt.tol.atol = 1e-4;
  const CheckReport r = check_model(model, x, y, Mode::Train, rng, opt);
  EXPECT_TRUE(r.ok()) << r;
  EXPECT_GT(r.checked, 300u);
}

// makemore part 5's WaveNet: a stack that starts with a flatten gets the embedding as a
// sequence, and FlattenConsecutive(2) merges pairs of positions level by level (8 -> 4 -> 2 -> 1),
// with BatchNorm1d over the (example, position) rows in between.
TEST(GradCheckModel, HierarchicalFlattenConsecutive) {
  nlohmann::json layers = nlohmann::json::array();
  for (int level = 0; level < 3; ++level) {
    layers.push_back({{"type", "flatten"}, {"n", 2}});
    layers.push_back(
        {{"type", "linear"}, {"out", 12}, {"bias", false}, {"weight_init", {{"kind", "kaiming"}, {"gain", "tanh"}}}});
    layers.push_back({{"type", "batchnorm1d"}});
    layers.push_back({{"type", "tanh"}});
  }
  layers.push_back({{"type", "linear"}, {"out", "vocab"}, {"weight_init", {{"kind", "normal"}, {"scale", 0.1}}}});
  const nlohmann::json j = {{"data", {{"block_size", 8}}}, {"model", {{"n_embd", 6}, {"layers", layers}}}};
  const mm::Config cfg = mm::parse_config(j, "wavenet.json");
  mm::Model model(cfg, 27);
  // The first Linear sees two positions' embeddings (2 x 6), the next two levels 2 x 12 each.
  EXPECT_EQ(model.params().info(model.params().find("layers.1.weight")).rows, 12);
  EXPECT_EQ(model.params().info(model.params().find("layers.5.weight")).rows, 24);
  std::mt19937 rng(29);
  std::uniform_int_distribution<int> tok(0, 26);
  std::vector<int32_t> x(8 * 8), y(8);
  for (auto& t : x) t = tok(rng);
  for (auto& t : y) t = tok(rng);
  mm::TorchGenerator gen(cfg.seed);
  model.init(gen);
  CheckOptions opt;
  opt.max_entries = 24;
  opt.tol.atol = 1e-4;
  const CheckReport r = check_model(model, x, y, Mode::Train, rng, opt);
  EXPECT_TRUE(r.ok()) << r;
  EXPECT_GT(r.checked, 200u);
}

// ---- softmax cross-entropy -----------------------------------------------------------------

TEST(SoftmaxCrossEntropy, HugeLogitsStayFinite) {
  for (float scale : {100.0f, 1e4f}) {
    SCOPED_TRACE(scale);
    std::mt19937 rng(11);
    const Mat logits = randn(6, 27, rng, scale);
    const std::vector<int32_t> y{0, 3, 26, 5, 5, 11};
    mm::SoftmaxCrossEntropy ce;
    const float loss = ce.forward(logits, y.data());
    EXPECT_TRUE(std::isfinite(loss));
    EXPECT_GE(loss, 0.0f);
    // The double reference: the float loss is as exact as its magnitude allows.
    const double ref = mm::SoftmaxCrossEntropy::sum_loss(logits, y.data()) / 6.0;
    EXPECT_NEAR(loss, ref, 1e-5 * std::max(1.0, ref));
    Mat d;
    ce.backward(&d);
    EXPECT_TRUE(d.allFinite());
    for (Eigen::Index b = 0; b < d.rows(); ++b) EXPECT_NEAR(d.row(b).sum(), 0.0f, 1e-6f);  // probs sum to 1
  }
}

// The vectorized rows (16 lanes, a masked tail, float exp) against softmax in double, for
// widths with no tail, a tail only, and several blocks: how far the float kernel is from exact.
TEST(SoftmaxCrossEntropy, VectorRowsAgreeWithDoubleForEveryWidth) {
  std::mt19937 rng(13);
  for (int V : {1, 2, 15, 16, 17, 27, 32, 33, 100}) {
    SCOPED_TRACE(V);
    const int B = 7;
    const Mat logits = randn(B, V, rng, 3.0f);
    std::vector<int32_t> y(B);
    for (int b = 0; b < B; ++b) y[static_cast<std::size_t>(b)] = (b * 5) % V;
    mm::SoftmaxCrossEntropy ce;
    const float loss = ce.forward(logits, y.data());
    const double ref = mm::SoftmaxCrossEntropy::sum_loss(logits, y.data()) / B;
    EXPECT_NEAR(loss, ref, 2e-6 * std::max(1.0, ref));
    Mat scratch;
    EXPECT_NEAR(mm::SoftmaxCrossEntropy::sum_loss_fast(logits, y.data(), scratch), ref * B, 2e-6 * std::max(1.0, ref * B));
    for (int b = 0; b < B; ++b) {
      double m = logits(b, 0), z = 0;
      for (int c = 1; c < V; ++c) m = std::max(m, static_cast<double>(logits(b, c)));
      for (int c = 0; c < V; ++c) z += std::exp(static_cast<double>(logits(b, c)) - m);
      for (int c = 0; c < V; ++c) {
        const double p = std::exp(static_cast<double>(logits(b, c)) - m) / z;
        EXPECT_NEAR(ce.probs()(b, c), p, 1e-6 * p + 1e-12) << "row " << b << " col " << c;
      }
    }
  }
}

TEST(SoftmaxCrossEntropy, GradientMatchesFiniteDifferences) {
  std::mt19937 rng(12);
  Mat logits = randn(6, 27, rng, 2.0f);
  const std::vector<int32_t> y{0, 3, 26, 5, 5, 11};
  mm::SoftmaxCrossEntropy ce;
  ce.forward(logits, y.data());
  Mat d;
  ce.backward(&d);
  const auto objective = [&] { return mm::SoftmaxCrossEntropy::sum_loss(logits, y.data()) / 6.0; };
  CheckOptions opt;
  opt.step = 1e-3;
  opt.tol = {1e-4, 2e-2};  // gradients are (p - onehot) / 6, at most 1/6
  CheckReport r;
  for (Eigen::Index k = 0; k < logits.size(); ++k)
    check_entry(logits.data() + k, d.data()[k], objective, "logits", static_cast<std::size_t>(k), opt, r);
  EXPECT_TRUE(r.ok()) << r;
}

// ---- BatchNorm running statistics ----------------------------------------------------------

// Column mean and variance (unbiased) in double.
void column_stats(const Mat& x, std::vector<double>& mean, std::vector<double>& var) {
  const auto n = static_cast<double>(x.rows());
  mean.assign(static_cast<std::size_t>(x.cols()), 0.0);
  var.assign(static_cast<std::size_t>(x.cols()), 0.0);
  for (Eigen::Index c = 0; c < x.cols(); ++c) {
    double s = 0, ss = 0;
    for (Eigen::Index r = 0; r < x.rows(); ++r) s += x(r, c);
    const double m = s / n;
    for (Eigen::Index r = 0; r < x.rows(); ++r) ss += (x(r, c) - m) * (x(r, c) - m);
    mean[static_cast<std::size_t>(c)] = m;
    var[static_cast<std::size_t>(c)] = ss / (n - 1);
  }
}

TEST(BatchNormRunningStats, MomentumUpdatesOfBothForms) {
  for (bool lecture : {true, false}) {
    SCOPED_TRACE(lecture ? "lecture form" : "class form");
    const mm::BatchNormOptions opt = lecture ? lecture_bn() : class_bn();
    std::mt19937 rng(13);
    Built b(std::make_unique<mm::BatchNorm1d>(opt), 1, 5, rng);
    const int rm = b.store.find("layers.0.running_mean");
    const int rs = b.store.find(lecture ? "layers.0.running_std" : "layers.0.running_var");
    ASSERT_GE(rm, 0);
    ASSERT_GE(rs, 0);
    const std::vector<float> mean0(b.store.data(rm), b.store.data(rm) + 5), stat0(b.store.data(rs), b.store.data(rs) + 5);
    Mat x = randn(16, 5, rng, 3.0f);
    x.rowwise() += randn(1, 5, rng).row(0);
    std::vector<double> mean, var;
    column_stats(x, mean, var);

    // Eval mode reads the running statistics and leaves them alone.
    b.layer->forward(x, Mode::Eval);
    const float* gamma = b.store.data(b.store.find("layers.0.gamma"));
    const float* beta = b.store.data(b.store.find("layers.0.beta"));
    for (int c = 0; c < 5; ++c) {
      EXPECT_EQ(b.store.data(rm)[c], mean0[c]);
      EXPECT_EQ(b.store.data(rs)[c], stat0[c]);
      const double denom = lecture ? stat0[c] : std::sqrt(stat0[c] + opt.eps);
      const double want = gamma[c] * (x(3, c) - mean0[c]) / denom + beta[c];
      EXPECT_NEAR(b.layer->out()(3, c), want, 1e-5 * std::max(1.0, std::abs(want)));
    }

    // Train mode: running = (1 - momentum) * running + momentum * batch statistic, where the
    // statistic is the unbiased std (no eps) in the lecture form and the unbiased var in the class.
    b.layer->forward(x, Mode::Train);
    for (int c = 0; c < 5; ++c) {
      const double m = opt.momentum;
      const double stat = lecture ? std::sqrt(var[c]) : var[c];
      const double want_mean = (1 - m) * mean0[c] + m * mean[c];
      const double want_stat = (1 - m) * stat0[c] + m * stat;
      EXPECT_NEAR(b.store.data(rm)[c], want_mean, 1e-6 * std::max(1.0, std::abs(want_mean)));
      EXPECT_NEAR(b.store.data(rs)[c], want_stat, 1e-6 * std::max(1.0, std::abs(want_stat)));
      // and the batch output is normalized by the batch statistics
      const double want = gamma[c] * (x(3, c) - mean[c]) / std::sqrt(var[c] + opt.eps) + beta[c];
      EXPECT_NEAR(b.layer->out()(3, c), want, 1e-5 * std::max(1.0, std::abs(want)));
    }
  }
}

// After calibrate, each BatchNorm's running statistics are the mean and (unbiased) var, or
// std for the lecture form, of what that layer sees over the whole data in eval mode.
TEST(BatchNormRunningStats, CalibrateUsesTheWholeData) {
  for (const char* preset : {"lecture-batchnorm", "lecture-deep"}) {
    SCOPED_TRACE(preset);
    const mm::Config cfg = mm::load_preset(preset);
    mm::Model model(cfg, 27);
    mm::TorchGenerator gen(cfg.seed);
    model.init(gen);
    std::mt19937 rng(14);
    std::uniform_int_distribution<int> tok(0, 26);
    mm::Examples ex;
    ex.block_size = cfg.block_size;
    ex.x.resize(1000 * static_cast<std::size_t>(cfg.block_size));
    ex.y.resize(1000);
    for (auto& t : ex.x) t = tok(rng);
    for (auto& t : ex.y) t = tok(rng);
    model.calibrate(ex, 300);  // uneven chunks: 300, 300, 300, 100

    model.forward(ex.x.data(), 1000, Mode::Eval);  // every BatchNorm now uses calibrated stats
    const auto& layers = model.stack().layers();
    int checked = 0;
    for (std::size_t k = 1; k < layers.size(); ++k) {
      const auto* bn = dynamic_cast<const mm::BatchNorm1d*>(layers[k].get());
      if (!bn) continue;
      const std::string prefix = "layers." + std::to_string(k) + ".";
      const bool std_form = bn->options().running_std;
      const float* rm = model.params().data(model.params().find(prefix + "running_mean"));
      const float* rs = model.params().data(model.params().find(prefix + (std_form ? "running_std" : "running_var")));
      std::vector<double> mean, var;
      column_stats(layers[k - 1]->out(), mean, var);
      for (std::size_t c = 0; c < mean.size(); ++c) {
        const double stat = std_form ? std::sqrt(var[c] + bn->options().eps) : var[c];
        EXPECT_NEAR(rm[c], mean[c], 1e-5 + 1e-4 * std::abs(mean[c])) << prefix << c;
        EXPECT_NEAR(rs[c], stat, 1e-5 + 1e-4 * std::abs(stat)) << prefix << c;
      }
      ++checked;
    }
    EXPECT_EQ(checked, std::string(preset) == "lecture-deep" ? 6 : 1);
  }
}

}  // namespace
