// Diagnostics: one-pass statistics, histograms, the snapshot observer and the doctor. The
// observer only reads what the step already computed (each layer's cached output, the
// gradients Sequential keeps, the ParamStore buffers); the one extra forward is the dead-unit
// sample, taken after backward so the step's update is untouched.
#include "makemore/diag.h"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>

#include "makemore/error.h"
#include "makemore/layer_kinds.h"
#include "makemore/run.h"

namespace mm {

// ---- statistics ----------------------------------------------------------------------------
namespace {

// Shifted sums in double: with the shift near the mean, sum(d^2) - sum(d)^2/n loses nothing
// that matters even for gamma-like data (mean 1, std 1e-4).
template <class Get>
Moments moments_of(std::size_t n, Get get) {
  Moments m;
  double shift = 0, s = 0, ss = 0;
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  bool have_shift = false;
  for (std::size_t i = 0; i < n; ++i) {
    const float v = get(i);
    if (!std::isfinite(v)) {
      ++m.nonfinite;
      continue;
    }
    const double x = v;
    if (!have_shift) {
      shift = x;
      have_shift = true;
    }
    const double d = x - shift;
    s += d;
    ss += d * d;
    lo = std::min(lo, x);
    hi = std::max(hi, x);
    ++m.n;
  }
  if (m.n == 0) return m;
  const double nn = static_cast<double>(m.n);
  m.mean = shift + s / nn;
  m.std = m.n > 1 ? std::sqrt(std::max(0.0, (ss - s * s / nn) / (nn - 1))) : 0.0;
  m.min = lo;
  m.max = hi;
  return m;
}

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

double log10_ratio(double num, double den) {
  if (!(num > 0) || !(den > 0) || !std::isfinite(num) || !std::isfinite(den)) return kNaN;
  return std::log10(num / den);
}

}  // namespace

namespace {

// The vectorized path (Eigen reassociates the sums); the scalar one when a value is not finite.
template <class Expr>
Moments moments_fast(const Expr& e, std::size_t n, Moments (*slow)(const void*, std::size_t), const void* ctx) {
  Moments m;
  if (n == 0) return m;
  const double shift = e(0);
  if (!std::isfinite(shift)) return slow(ctx, n);
  const auto d = e.template cast<double>() - shift;
  const double s = d.sum(), ss = d.square().sum();
  if (!std::isfinite(s) || !std::isfinite(ss)) return slow(ctx, n);
  const double nn = static_cast<double>(n);
  m.n = static_cast<int64_t>(n);
  m.mean = shift + s / nn;
  m.std = n > 1 ? std::sqrt(std::max(0.0, (ss - s * s / nn) / (nn - 1))) : 0.0;
  m.min = e.minCoeff();
  m.max = e.maxCoeff();
  return m;
}

using ArrF = Eigen::Array<float, Eigen::Dynamic, 1>;

Moments moments_slow(const void* ctx, std::size_t n) {
  const float* x = static_cast<const float*>(ctx);
  return moments_of(n, [x](std::size_t i) { return x[i]; });
}

// std(a) and std(a - b) in one pass over both arrays, for the every-step update ratios: four
// independent double lanes per sum so the compiler can vectorize without reassociating.
void update_stds(const float* a, const float* b, std::size_t n, double* sd_data, double* sd_update) {
  *sd_data = *sd_update = kNaN;
  if (n < 2) return;
  const double sa = a[0], su = static_cast<double>(a[0] - b[0]);
  double s1[4] = {0, 0, 0, 0}, q1[4] = {0, 0, 0, 0}, s2[4] = {0, 0, 0, 0}, q2[4] = {0, 0, 0, 0};
  std::size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    for (std::size_t l = 0; l < 4; ++l) {
      const double x = static_cast<double>(a[i + l]) - sa;
      const double u = static_cast<double>(a[i + l] - b[i + l]) - su;
      s1[l] += x;
      q1[l] += x * x;
      s2[l] += u;
      q2[l] += u * u;
    }
  }
  for (; i < n; ++i) {
    const double x = static_cast<double>(a[i]) - sa;
    const double u = static_cast<double>(a[i] - b[i]) - su;
    s1[0] += x;
    q1[0] += x * x;
    s2[0] += u;
    q2[0] += u * u;
  }
  const double nn = static_cast<double>(n);
  const double S1 = s1[0] + s1[1] + s1[2] + s1[3], Q1 = q1[0] + q1[1] + q1[2] + q1[3];
  const double S2 = s2[0] + s2[1] + s2[2] + s2[3], Q2 = q2[0] + q2[1] + q2[2] + q2[3];
  *sd_data = std::sqrt(std::max(0.0, (Q1 - S1 * S1 / nn) / (nn - 1)));
  *sd_update = std::sqrt(std::max(0.0, (Q2 - S2 * S2 / nn) / (nn - 1)));
}

}  // namespace

Moments moments(const float* x, std::size_t n) {
  const Eigen::Map<const ArrF> X(x, static_cast<Eigen::Index>(n));
  return moments_fast(X, n, moments_slow, x);
}

void Welford::add(double x) {
  ++n_;
  const double d = x - mean_;
  mean_ += d / static_cast<double>(n_);
  m2_ += d * (x - mean_);
}

double Welford::std() const { return std::sqrt(var()); }

Histogram histogram(const float* x, std::size_t n, int bins, double lo, double hi) {
  Histogram h;
  if (bins < 1) bins = 1;
  if (!(lo < hi)) {
    const Moments m = moments(x, n);
    lo = m.min;
    hi = m.max;
    if (!(lo < hi)) {  // constant (or empty): a unit-wide range around the value
      lo -= 0.5;
      hi += 0.5;
    }
  }
  h.lo = lo;
  h.hi = hi;
  h.counts.assign(static_cast<std::size_t>(bins), 0);
  const double scale = static_cast<double>(bins) / (hi - lo);
  for (std::size_t i = 0; i < n; ++i) {
    if (!std::isfinite(x[i])) continue;
    const double k = std::floor((static_cast<double>(x[i]) - lo) * scale);
    const auto b = static_cast<std::size_t>(std::clamp(k, 0.0, static_cast<double>(bins - 1)));
    ++h.counts[b];
  }
  return h;
}

SaturationScale SaturationScale::of(double lo, double hi) {
  return {static_cast<float>((lo + hi) / 2), static_cast<float>(2 / (hi - lo))};
}

int count_dead_columns(const Mat& t, float threshold, SaturationScale s) {
  if (t.rows() == 0) return 0;
  std::vector<char> dead(static_cast<std::size_t>(t.cols()), 1);
  for (Eigen::Index r = 0; r < t.rows(); ++r)
    for (Eigen::Index c = 0; c < t.cols(); ++c)
      if (!(std::fabs((t(r, c) - s.center) * s.scale) > threshold)) dead[static_cast<std::size_t>(c)] = 0;
  return static_cast<int>(std::count(dead.begin(), dead.end(), 1));
}

double fraction_beyond(const float* x, std::size_t n, float threshold, SaturationScale s) {
  if (n == 0) return 0;
  std::size_t k = 0;
  for (std::size_t i = 0; i < n; ++i) k += std::fabs((x[i] - s.center) * s.scale) > threshold ? 1 : 0;
  return static_cast<double>(k) / static_cast<double>(n);
}

bool LayerDiag::bounded() const { return kind && kind->bounded(); }

// ---- layers inside blocks -------------------------------------------------------------------
namespace {

// A layer inside a block (a Residual's branch, nested ones included), in forward order: its
// path name, the block's stack position, its input, and the branch that holds its output's
// gradient (branch->dout(pos)).
struct InnerLayer {
  const Layer* layer;
  const Sequential* branch;
  std::size_t pos;
  const Mat* input;
  int top;
  std::string name;
};

void collect_inner(const Layer& l, int top, const std::string& name, std::vector<InnerLayer>& out) {
  const auto* r = dynamic_cast<const Residual*>(&l);
  if (!r) return;
  const auto& ls = r->branch().layers();
  for (std::size_t j = 0; j < ls.size(); ++j) {
    const std::string n = name + "." + std::to_string(j);
    out.push_back({ls[j].get(), &r->branch(), j, j == 0 ? r->input() : &ls[j - 1]->out(), top, n});
    collect_inner(*ls[j], top, n, out);
  }
}

std::vector<InnerLayer> inner_layers(const Model& model) {
  std::vector<InnerLayer> out;
  const auto& layers = model.stack().layers();
  for (std::size_t i = 0; i < layers.size(); ++i) collect_inner(*layers[i], static_cast<int>(i), std::to_string(i), out);
  return out;
}

// The scale saturation is measured on: the layer's bounds, or [-1, 1] (|out|) when it has none.
SaturationScale saturation_scale(const LayerKind& k) {
  return k.traits.bounds ? SaturationScale::of(k.traits.bounds->lo, k.traits.bounds->hi) : SaturationScale{};
}

// A layer's output statistics (and for a bounded activation, its pre-activation's and dead units).
LayerDiag layer_diag(const Layer& l, const Mat* pre, int index, std::string name, int bins) {
  const Mat& o = l.out();
  const auto n = static_cast<std::size_t>(o.size());
  LayerDiag d;
  d.kind = &l.kind();
  d.index = index;
  d.name = std::move(name);
  d.type = l.type();
  d.describe = l.describe();
  d.units = static_cast<int>(o.cols());
  d.out = moments(o.data(), n);
  const SaturationScale sat = saturation_scale(*d.kind);
  d.saturated_pct = 100.0 * fraction_beyond(o.data(), n, 0.97f, sat);
  d.sat99_pct = 100.0 * fraction_beyond(o.data(), n, 0.99f, sat);
  const auto& bounds = d.kind->traits.bounds;
  d.hist = bounds ? histogram(o.data(), n, bins, bounds->lo, bounds->hi) : histogram(o.data(), n, bins);
  if (bounds) {
    d.dead_units = count_dead_columns(o, 0.99f, sat);
    if (pre) {
      d.has_pre = true;
      d.pre = moments(pre->data(), static_cast<std::size_t>(pre->size()));
      d.pre_hist = histogram(pre->data(), static_cast<std::size_t>(pre->size()), bins);
    }
  }
  return d;
}

void add_grad(LayerDiag& d, const Mat& g, std::size_t out_size, int bins) {
  if (static_cast<std::size_t>(g.size()) != out_size) return;  // no backward ran
  d.has_grad = true;
  d.grad = moments(g.data(), static_cast<std::size_t>(g.size()));
  d.grad_hist = histogram(g.data(), static_cast<std::size_t>(g.size()), bins);
}

}  // namespace

std::vector<const LayerDiag*> layers_in_order(const Snapshot& s) {
  std::vector<const LayerDiag*> out;
  std::size_t k = 0;
  for (const auto& d : s.layers) {
    out.push_back(&d);
    for (; k < s.inner.size() && s.inner[k].index == d.index; ++k) out.push_back(&s.inner[k]);
  }
  for (; k < s.inner.size(); ++k) out.push_back(&s.inner[k]);
  return out;
}

// ---- the observer ---------------------------------------------------------------------------
bool DiagObserver::snapshot_step(int64_t step) const {
  return (opt_.every > 0 && step % opt_.every == 0) || step == opt_.last_step;
}

bool DiagObserver::ratio_step(int64_t step) const {
  return step < opt_.ratio_dense_steps || (opt_.ratio_every > 0 && step % opt_.ratio_every == 0) ||
         snapshot_step(step);
}

void DiagObserver::after_forward(Trainer& t, int64_t step, float loss) {
  trainer_config_ = &t.config();
  // Room for the run's losses up front, up to 2^20 (a huge --steps grows it as it goes).
  if (losses_.empty()) losses_.reserve(static_cast<std::size_t>(std::clamp<int64_t>(t.config().steps, 1, int64_t{1} << 20)));
  losses_.push_back(loss);
  if (snapshot_step(step)) capture_forward(t.model(), step, loss);
}

void DiagObserver::after_backward(Trainer& t, int64_t step) {
  if (current_ || ratio_step(step)) capture_backward(t.model(), step);
}

void DiagObserver::after_update(Trainer& t, int64_t step, double lr) {
  if (current_ || have_before_) capture_update(t.model(), step, lr, true);
}

void DiagObserver::capture_forward(Model& model, int64_t step, float loss) {
  Snapshot s;
  s.step = step;
  s.loss = loss;
  const auto& layers = model.stack().layers();
  // The examples: the logits' rows (a layer before a flatten has a row per position).
  s.batch = layers.empty() ? 0 : static_cast<int>(layers.back()->out().rows());
  for (std::size_t i = 0; i < layers.size(); ++i) {
    const Layer& l = *layers[i];
    const Mat& pre = i == 0 ? model.stack_input() : layers[i - 1]->out();
    LayerDiag d = layer_diag(l, &pre, static_cast<int>(i), std::to_string(i), opt_.bins);
    if (d.bounded() && s.saturation_map.layer < 0) {
      const Mat& o = l.out();
      const auto n = static_cast<std::size_t>(o.size());
      const SaturationScale sat = saturation_scale(*d.kind);
      auto& m = s.saturation_map;
      m.layer = d.index;
      m.type = d.type;
      m.rows = static_cast<int>(o.rows());
      m.cols = static_cast<int>(o.cols());
      m.bits.resize(n);
      for (std::size_t k = 0; k < n; ++k) m.bits[k] = std::fabs((o.data()[k] - sat.center) * sat.scale) > 0.99f ? '1' : '0';
    }
    s.layers.push_back(std::move(d));
  }
  for (const InnerLayer& in : inner_layers(model)) s.inner.push_back(layer_diag(*in.layer, in.input, in.top, in.name, opt_.bins));
  current_ = std::move(s);
}

void DiagObserver::capture_backward(Model& model, int64_t /*step*/) {
  ParamStore& ps = model.params();
  if (current_) {
    const auto& layers = model.stack().layers();
    for (std::size_t i = 0; i < layers.size() && i < current_->layers.size(); ++i)
      add_grad(current_->layers[i], model.stack().dout(i), static_cast<std::size_t>(layers[i]->out().size()), opt_.bins);
    const auto inner = inner_layers(model);
    for (std::size_t k = 0; k < inner.size() && k < current_->inner.size(); ++k)
      add_grad(current_->inner[k], inner[k].branch->dout(inner[k].pos), static_cast<std::size_t>(inner[k].layer->out().size()),
               opt_.bins);
    for (const ParamInfo& p : ps.infos()) {
      if (!p.trainable) continue;
      const float* g = ps.grads().data() + p.offset;
      ParamDiag d;
      d.name = p.name;
      d.rows = p.rows;
      d.cols = p.cols;
      d.is_1d = p.is_1d;
      d.grad = moments(g, p.size());
      d.hist = histogram(g, p.size(), opt_.bins);
      current_->params.push_back(std::move(d));
    }
  }
  before_ = ps.values();  // same size every time: no allocation after the first
  have_before_ = true;
  if (current_) sample_pass(model);
}

void DiagObserver::capture_update(Model& model, int64_t step, double lr, bool updated) {
  const ParamStore& ps = model.params();
  const FloatBuf& after = ps.values();
  UpdateRatios u;
  u.step = step;
  const bool ratios = updated && have_before_ && before_.size() == after.size();
  std::size_t k = 0;
  for (const ParamInfo& p : ps.infos()) {
    if (!p.trainable) continue;
    const float* a = after.data() + p.offset;
    double r = kNaN;
    if (ratios) {
      double sd_data, sd_update;
      update_stds(a, before_.data() + p.offset, p.size(), &sd_data, &sd_update);
      r = log10_ratio(sd_update, sd_data);
      u.log10.push_back(r);
    }
    if (current_ && k < current_->params.size()) {
      const Moments data = moments(a, p.size());
      ParamDiag& d = current_->params[k];
      d.data = data;
      d.grad_data_ratio = data.std > 0 ? d.grad.std / data.std : kNaN;
      if (ratios) d.update_data_log10 = r;
    }
    ++k;
  }
  have_before_ = false;
  if (ratios) {
    ratios_.push_back(u);
    if (on_ratios) on_ratios(ratios_.back(), ps);
  }
  if (current_) {
    current_->lr = lr;
    current_->updated = ratios;
    last_ = std::move(current_);
    current_.reset();
    if (on_snapshot) on_snapshot(*last_);
  }
}

// Dead units over a larger sample in train mode (batch statistics, as during training). The
// sample runs through a twin model holding a copy of the parameters and running statistics:
// the training model's caches, buffers and step stay untouched, and the twin keeps its
// sample-sized buffers between snapshots (resizing the training model's buffers from 32 rows
// to 1,000 and back cost ~25 ms a time in page faults).
void DiagObserver::sample_pass(Model& model) {
  const Config* cfg = opt_.config ? opt_.config : trainer_config_;
  if (!opt_.sample_from || opt_.sample <= 0 || !current_ || !cfg) return;
  const Examples& ex = *opt_.sample_from;
  const std::size_t n = std::min<std::size_t>(static_cast<std::size_t>(opt_.sample), ex.size());
  if (n < 2) return;
  const auto T = static_cast<std::size_t>(ex.block_size);
  if (sample_y_.size() != n) {
    sample_x_.resize(n * T);
    sample_y_.resize(n);
    for (std::size_t k = 0; k < n; ++k) {  // evenly spaced through the shuffled split
      const std::size_t r = k * ex.size() / n;
      std::copy(ex.x.begin() + static_cast<std::ptrdiff_t>(r * T), ex.x.begin() + static_cast<std::ptrdiff_t>((r + 1) * T),
                sample_x_.begin() + static_cast<std::ptrdiff_t>(k * T));
      sample_y_[k] = ex.y[r];
    }
  }
  if (!twin_) twin_ = std::make_unique<Model>(*cfg, model.vocab_size());
  twin_->params().values() = model.params().values();
  twin_->params().buffers() = model.params().buffers();
  // A generator of its own, so a stochastic layer's draws here leave the run's stream alone.
  TorchGenerator gen(static_cast<uint64_t>(current_->step));
  twin_->forward(sample_x_.data(), static_cast<int>(n), ForwardContext(Mode::Train, &gen));
  const auto& layers = twin_->stack().layers();
  auto sampled = [](LayerDiag& d, const Mat& o) {
    if (!d.bounded()) return;
    const SaturationScale sat = saturation_scale(*d.kind);
    d.dead_units_sample = count_dead_columns(o, 0.99f, sat);
    d.sat99_pct_sample = 100.0 * fraction_beyond(o.data(), static_cast<std::size_t>(o.size()), 0.99f, sat);
  };
  for (LayerDiag& d : current_->layers) sampled(d, layers[static_cast<std::size_t>(d.index)]->out());
  const auto inner = inner_layers(*twin_);
  for (std::size_t k = 0; k < inner.size() && k < current_->inner.size(); ++k) sampled(current_->inner[k], inner[k].layer->out());
}

// ---- the doctor -----------------------------------------------------------------------------
namespace {

std::string param_name(const Model& model, const Layer& l, std::size_t k) {
  return k < l.param_ids().size() ? model.params().info(l.param_ids()[k]).name : std::string("?");
}

const ParamDiag* find_param(const Snapshot& s, const std::string& name) {
  for (const auto& p : s.params)
    if (p.name == name) return &p;
  return nullptr;
}

std::string layer_name(const LayerDiag& d) { return d.name.empty() ? std::to_string(d.index) : d.name; }
std::string layer_label(const LayerDiag& d) { return fmt::format("layer {} ({})", layer_name(d), d.type); }

// The Linear that feeds layer i of a sequence (the stack, or a block's branch), with its
// position, and whether a normalization sits between them; nullptr when none does directly.
const Linear* feeding_linear(const std::vector<std::unique_ptr<Layer>>& seq, std::size_t i, std::size_t* at,
                             bool* through_bn) {
  *through_bn = false;
  for (std::size_t k = i; k-- > 0;) {
    if (const auto* lin = dynamic_cast<const Linear*>(seq[k].get())) {
      *at = k;
      return lin;
    }
    const LayerKind& kind = seq[k]->kind();
    if (kind.is(LayerRole::Normalization)) *through_bn = true;
    // another activation reshapes the distribution; a residual's output is not one Linear's
    if (kind.is(LayerRole::Activation) || kind.is(LayerRole::Block)) break;
  }
  return nullptr;
}

// A gain as the lecture writes it: 5/3, 1, or decimals.
std::string gain_text(double g) {
  for (int q = 1; q <= 12; ++q)
    if (const double p = g * q; std::fabs(p - std::round(p)) < 1e-9)
      return q == 1 ? fmt::format("{}", std::lround(p)) : fmt::format("{}/{}", std::lround(p), q);
  return fmt::format("{:.3f}", g);
}

// Where a bounded activation counts as saturated (|u| > 0.99 in diag.h's terms), in its own units.
std::string saturated_range(const LayerTraits::Bounds& b) {
  if (b.lo == -b.hi) return fmt::format("beyond |{:g}|", 0.99 * b.hi);
  const double margin = 0.005 * (b.hi - b.lo);
  return fmt::format("below {:g} or above {:g}", b.lo + margin, b.hi - margin);
}

// Where a snapshot layer sits: its sequence and position (the stack, or a block's branch),
// and the name prefix of that sequence's layers ("" for the stack, "2." inside block 2).
struct Place {
  const std::vector<std::unique_ptr<Layer>>* seq = nullptr;
  std::size_t pos = 0;
  std::string prefix;
};
Place place_of(const Model& model, const LayerDiag& d) {
  Place p;
  if (d.name.find('.') == std::string::npos) {
    p.seq = &model.stack().layers();
    p.pos = static_cast<std::size_t>(d.index);
    return p;
  }
  for (const InnerLayer& in : inner_layers(model))
    if (in.name == d.name) {
      p.seq = &in.branch->layers();
      p.pos = in.pos;
      p.prefix = d.name.substr(0, d.name.rfind('.') + 1);
      return p;
    }
  return p;
}

// The layers whose output std should stay put across depth: the bounded activations, or when
// there are fewer than two of them the Linear layers before the logits.
std::vector<const LayerDiag*> depth_layers(const Snapshot& s) {
  std::vector<const LayerDiag*> out;
  for (const LayerDiag* d : layers_in_order(s))  // those inside residual blocks too
    if (d->bounded()) out.push_back(d);
  if (out.size() >= 2) return out;
  out.clear();
  for (std::size_t i = 0; i + 1 < s.layers.size(); ++i)
    if (s.layers[i].kind && s.layers[i].kind->is(LayerRole::Matmul)) out.push_back(&s.layers[i]);
  return out;
}

}  // namespace

std::vector<Finding> diagnose(const Report& r, const Model& model) {
  std::vector<Finding> out;
  const Snapshot& s = r.snapshot;
  const auto& layers = model.stack().layers();

  // 1. Confidently wrong at initialization: the hockey-stick loss curve of the lecture.
  if (r.initial_loss && *r.initial_loss > r.expected_loss + doctor::kOverconfidentExcess) {
    int last_linear = -1;
    for (std::size_t i = 0; i < layers.size(); ++i)
      if (dynamic_cast<const Linear*>(layers[i].get())) last_linear = static_cast<int>(i);
    Finding f;
    f.id = "overconfident-output";
    f.layer = last_linear;
    f.message = fmt::format(
        "the initial loss {:.4f} is far above ln({}) = {:.4f}, the loss of a uniform guess: the network starts "
        "confidently wrong, and its first thousands of steps go to squashing the logits (the hockey-stick loss "
        "curve) instead of learning",
        *r.initial_loss, r.vocab_size, r.expected_loss);
    f.evidence = fmt::format("initial loss {:.4f} vs expected {:.4f} (+{:.2f})", *r.initial_loss, r.expected_loss,
                             *r.initial_loss - r.expected_loss);
    if (r.steps_trained == 0 && !s.layers.empty()) {
      const Moments& lo = s.layers.back().out;
      f.evidence += fmt::format("; logits range [{:.1f}, {:.1f}], std {:.2f}", lo.min, lo.max, lo.std);
    }
    if (last_linear >= 0) {
      const auto& lin = static_cast<const Linear&>(*layers[static_cast<std::size_t>(last_linear)]);
      const std::string w = param_name(model, lin, 0);
      const ParamDiag* pw = find_param(s, w);
      f.fix = fmt::format("scale the last layer's weights {} by about 0.01{} so the logits start near 0 and the loss "
                          "near {:.2f}: in the config, its \"weight_init\": {{\"kind\": \"normal\", \"scale\": 0.01}}",
                          w, pw ? fmt::format(" (std {:.3g} -> {:.3g})", pw->data.std, pw->data.std * 0.01) : "",
                          r.expected_loss);
      if (lin.has_bias())
        f.fix += fmt::format(" and zero its bias {}: \"bias_init\": {{\"kind\": \"zeros\"}}", param_name(model, lin, 1));
    } else {
      f.fix = "scale the weights of the layer producing the logits by about 0.01 and zero its bias";
    }
    out.push_back(std::move(f));
  }

  // 2. Saturated units of a bounded activation (and 3. dead ones): a local gradient near 0
  // (tanh's 1 - t^2) blocks the gradient.
  for (const LayerDiag* dp : layers_in_order(s)) {
    const LayerDiag& d = *dp;
    if (!d.bounded()) continue;
    const LayerKind& act = *d.kind;
    const double gain = act.traits.kaiming_gain.value_or(1.0);
    const bool sampled = d.sat99_pct_sample >= 0;
    const double pct = sampled ? d.sat99_pct_sample : d.sat99_pct;
    bool through_bn = false;
    const Place where = place_of(model, d);
    std::size_t lin_at = 0;
    const Linear* lin = where.seq ? feeding_linear(*where.seq, where.pos, &lin_at, &through_bn) : nullptr;
    std::string cure;
    if (lin && !through_bn) {
      const Linear& L = *lin;
      const int fan_in = L.in_features();
      const std::string w = param_name(model, L, 0);
      const ParamDiag* pw = find_param(s, w);
      cure = fmt::format(
          "initialize {} with the Kaiming scale gain/sqrt(fan_in) = ({})/sqrt({}) = {:.3f}{} (config: \"weight_init\": "
          "{{\"kind\": \"kaiming\", \"gain\": \"{}\"}}){}, or put a BatchNorm1d between layer {} and the {}",
          w, gain_text(gain), fan_in, gain / std::sqrt(static_cast<double>(fan_in)),
          pw ? fmt::format(" instead of its std {:.3f}", pw->data.std) : "", act.traits.kaiming_gain ? act.name : "linear",
          L.has_bias() ? fmt::format(" and shrink its bias {} by 0.01 (\"bias_init\": {{\"kind\": \"normal\", \"scale\": 0.01}})",
                                     param_name(model, L, 1))
                       : "",
          where.prefix + std::to_string(lin_at), d.type);
    } else if (through_bn) {
      cure = "the pre-activation passes a normalization layer (BatchNorm1d, LayerNorm or GroupNorm) whose gamma / "
             "beta set its scale: lower the learning rate, or check that gamma has not grown large";
    } else {
      cure = fmt::format("scale down the pre-activation: initialize the layer feeding this {} with gain/sqrt(fan_in), gain {}",
                         d.type, gain_text(gain));
    }
    if (pct > doctor::kSaturatedPct) {
      Finding f;
      f.id = "saturated-activations";
      f.layer = d.index;
      f.message = fmt::format(
          "{}: {:.1f}% of the activations are {}, where the local gradient is below 2% of its peak: those units "
          "pass almost no gradient back, so the layers before them learn slowly",
          layer_label(d), pct, saturated_range(*act.traits.bounds));
      f.evidence = fmt::format("{:.1f}% of the {}x{} minibatch activations {}", d.sat99_pct,
                               d.units > 0 ? (d.out.n + d.out.nonfinite) / d.units : 0, d.units,
                               saturated_range(*act.traits.bounds));
      if (sampled) f.evidence += fmt::format(", {:.1f}% over the larger sample", d.sat99_pct_sample);
      if (d.has_pre) f.evidence += fmt::format("; pre-activation mean {:+.2f}, std {:.2f}", d.pre.mean, d.pre.std);
      f.fix = cure;
      out.push_back(std::move(f));
    }
    if (d.dead_units_sample > 0) {
      Finding f;
      f.id = "dead-units";
      f.layer = d.index;
      f.message = fmt::format(
          "{}: {} of {} units are {} for every example of the sample (a whole white column in the "
          "saturation map): their gradient is ~0 for all inputs, so they never learn",
          layer_label(d), d.dead_units_sample, d.units, saturated_range(*act.traits.bounds));
      f.evidence = fmt::format("{} dead over the sample, {} over the {}-example minibatch", d.dead_units_sample,
                               d.dead_units, s.batch);
      f.fix = cure + (r.steps_trained > 0 ? "; if they died during training, lower the learning rate" : "");
      out.push_back(std::move(f));
    }
  }

  // 4. Gradients and activations across depth.
  std::vector<const LayerDiag*> tanhs;  // bounded activations in order of depth, those inside residual blocks too
  for (const LayerDiag* d : layers_in_order(s))
    if (d->bounded()) tanhs.push_back(d);
  if (tanhs.size() >= 2 && tanhs.front()->has_grad && tanhs.back()->has_grad) {
    const LayerDiag& a = *tanhs.front();
    const LayerDiag& b = *tanhs.back();
    const std::string acts = a.kind == b.kind ? fmt::format("{} layer", a.kind->name) : "bounded activation";
    const std::string ev = fmt::format("gradient std {:.3e} at {} vs {:.3e} at {}", a.grad.std, layer_label(a), b.grad.std,
                                       layer_label(b));
    const std::string cure =
        "initialize every Linear with N(0,1) * gain / sqrt(fan_in) and gain 5/3 for tanh (\"weight_init\": {\"kind\": "
        "\"kaiming\", \"gain\": \"tanh\"}), or put a BatchNorm1d after each Linear";
    if (a.grad.std * doctor::kDepthFactor < b.grad.std) {
      out.push_back({"vanishing-gradients", -1,
                     fmt::format("the gradient shrinks {:.0f}x on its way back from the last to the first {}: "
                                 "the early layers barely learn",
                                 b.grad.std / std::max(a.grad.std, 1e-300), acts),
                     ev, cure});
    } else if (a.grad.std > doctor::kDepthFactor * b.grad.std) {
      out.push_back({"exploding-gradients", -1,
                     fmt::format("the gradient grows {:.0f}x on its way back from the last to the first {}: "
                                 "the early layers take steps far larger than the late ones",
                                 a.grad.std / std::max(b.grad.std, 1e-300), acts),
                     ev, cure + " (a gain above 5/3 amplifies each layer)"});
    }
  }
  const auto dl = depth_layers(s);
  if (dl.size() >= 2) {
    const LayerDiag& a = *dl.front();
    const LayerDiag& b = *dl.back();
    const std::string ev = fmt::format("output std {:.3g} at {} vs {:.3g} at {}", a.out.std, layer_label(a), b.out.std,
                                       layer_label(b));
    if (b.out.std * doctor::kDepthFactor < a.out.std) {
      out.push_back({"activations-collapse", -1,
                     "the activations shrink toward zero with depth: the deep layers see almost constant input",
                     ev,
                     "raise the weight scale to gain / sqrt(fan_in) (gain 5/3 for tanh, 1 for linear), or put a "
                     "BatchNorm1d after each Linear"});
    } else if (b.out.std > doctor::kDepthFactor * a.out.std) {
      out.push_back({"activations-explode", -1,
                     "the activations grow with depth: the deep layers saturate or overflow", ev,
                     "lower the weight scale to gain / sqrt(fan_in) (gain 5/3 for tanh, 1 for linear), or put a "
                     "BatchNorm1d after each Linear"});
    }
  }

  // 5. update:data far from the lecture's ~1e-3 (2-D weights, as the lecture plots them).
  if (r.steps_trained > 0 && !r.ratios.empty()) {
    std::vector<std::string> low, high;
    std::vector<double> bad;
    std::size_t k = 0, checked = 0;
    for (const ParamInfo& p : model.params().infos()) {
      if (!p.trainable) continue;
      const std::size_t idx = k++;
      if (p.is_1d || p.rows < 2) continue;
      Welford w;
      const std::size_t n = r.ratios.size();
      const std::size_t from = n > static_cast<std::size_t>(doctor::kUpdateWindow) ? n - doctor::kUpdateWindow : 0;
      for (std::size_t j = from; j < n; ++j)
        if (idx < r.ratios[j].log10.size() && std::isfinite(r.ratios[j].log10[idx])) w.add(r.ratios[j].log10[idx]);
      if (w.count() == 0) continue;
      ++checked;
      const double m = w.mean();
      if (m < doctor::kUpdateLow) low.push_back(fmt::format("{} {:.2f}", p.name, m));
      else if (m > doctor::kUpdateHigh) high.push_back(fmt::format("{} {:.2f}", p.name, m));
      else continue;
      bad.push_back(m);
    }
    if (!bad.empty() && 2 * bad.size() <= checked) {
      // A few weights off while most are near 1e-3: the learning rate is shared, so changing it
      // would move the others out of range. The lecture's own case: an output layer scaled down
      // at initialization updates fast relative to its small values until it grows.
      std::string ev = "log10(std(update) / std(data)), mean over the last recorded steps: ";
      if (!low.empty()) ev += "slow: " + fmt::format("{}", fmt::join(low, ", "));
      if (!low.empty() && !high.empty()) ev += "; ";
      if (!high.empty()) ev += "fast: " + fmt::format("{}", fmt::join(high, ", "));
      ev += fmt::format("; the other {} weights are within 1e-4..1e-2", checked - bad.size());
      out.push_back({"update-ratio", -1,
                     fmt::format("{} of {} weights update{} far from the lecture's ~1e-3 of their values", bad.size(), checked,
                                 bad.size() == 1 ? "s" : ""),
                     ev,
                     "keep the learning rate (it suits the other weights); look at those weights' initial scale: a layer "
                     "scaled down at initialization, like the lecture's output layer, updates fast until its weights grow, "
                     "and that is expected early in training"});
    } else if (!bad.empty()) {
      std::sort(bad.begin(), bad.end());
      const double med = bad[bad.size() / 2];
      const double lr = s.lr > 0 ? s.lr : 0.1;
      const double new_lr = lr * std::pow(10.0, -3.0 - med);
      std::string ev = "log10(std(update) / std(data)), mean over the last recorded steps: ";
      if (!low.empty()) ev += "too slow: " + fmt::format("{}", fmt::join(low, ", "));
      if (!low.empty() && !high.empty()) ev += "; ";
      if (!high.empty()) ev += "too fast: " + fmt::format("{}", fmt::join(high, ", "));
      out.push_back({"update-ratio", -1,
                     fmt::format("the updates are {} relative to the parameters (the lecture aims for about 1e-3, "
                                 "-3 on the log scale): the network {}",
                                 med < -3 ? "tiny" : "large", med < -3 ? "learns too slowly" : "may be unstable"),
                     ev,
                     fmt::format("set the learning rate to about {:.3g} (now {:.3g}: x10^({:.1f}))", new_lr, lr, -3.0 - med)});
    }
  }
  return out;
}

Report inspect_training(const Config& cfg_in, const Splits& splits, int vocab_size, int64_t steps,
                        std::unique_ptr<Model>* model_out) {
  Config cfg = cfg_in;
  cfg.steps = steps + 1;
  auto model = std::make_unique<Model>(cfg, vocab_size);
  DiagOptions opt;
  opt.every = 0;
  opt.last_step = steps;
  opt.sample_from = &splits.train;
  opt.config = &cfg;
  DiagObserver obs(opt);
  TorchGenerator gen(cfg.seed);
  model->init(gen, splits.train);
  Trainer trainer(*model, cfg, splits.train, gen);
  trainer.set_schedule_steps(cfg_in.steps);  // the configured run's schedule, not steps + 1
  trainer.add_observer(&obs);
  const TrainStats st = trainer.run();
  if (st.diverged || !obs.last())
    throw Error(fmt::format("training diverged at step {} (loss is not finite) before step {} could be measured; "
                            "inspect fewer steps or lower the learning rate",
                            st.diverged_step, steps));
  Report r;
  r.name = cfg.name;
  r.vocab_size = vocab_size;
  r.expected_loss = std::log(static_cast<double>(vocab_size));
  r.initial_loss = obs.losses().front();
  r.steps_trained = steps;
  r.snapshot = *obs.last();
  r.losses = obs.losses();
  if (steps > 0) {
    r.ratios = obs.ratios();
  } else {  // at initialization the measured step's own update is not part of the question
    for (auto& p : r.snapshot.params) p.update_data_log10.reset();
    r.snapshot.updated = false;
  }
  r.findings = diagnose(r, *model);
  if (model_out) *model_out = std::move(model);
  return r;
}

std::vector<double> loss_buckets(const std::vector<float>& losses, std::size_t bucket) {
  std::vector<double> out;
  if (bucket == 0) return out;
  for (std::size_t i = 0; i < losses.size(); i += bucket) {
    Welford w;
    for (std::size_t j = i; j < std::min(losses.size(), i + bucket); ++j)
      if (std::isfinite(losses[j])) w.add(losses[j]);
    out.push_back(w.count() ? w.mean() : kNaN);
  }
  return out;
}

// ---- JSON -----------------------------------------------------------------------------------
namespace {
using nlohmann::json;

json num(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

json hist_json(const Histogram& h) { return {{"lo", num(h.lo)}, {"hi", num(h.hi)}, {"counts", h.counts}}; }

json layer_json(const LayerDiag& d) {
  json j{{"index", d.index},
         {"name", d.name},
         {"type", d.type},
         {"describe", d.describe},
         {"units", d.units},
         {"out_mean", num(d.out.mean)},
         {"out_std", num(d.out.std)},
         {"out_min", num(d.out.min)},
         {"out_max", num(d.out.max)},
         {"saturated_pct", d.saturated_pct},
         {"sat99_pct", d.sat99_pct},
         {"dead_units", d.dead_units},
         {"dead_units_sample", d.dead_units_sample >= 0 ? json(d.dead_units_sample) : json(nullptr)},
         {"sat99_pct_sample", d.sat99_pct_sample >= 0 ? json(d.sat99_pct_sample) : json(nullptr)},
         {"hist", hist_json(d.hist)},
         {"grad_mean", d.has_grad ? num(d.grad.mean) : json(nullptr)},
         {"grad_std", d.has_grad ? num(d.grad.std) : json(nullptr)},
         {"grad_hist", d.has_grad ? hist_json(d.grad_hist) : json(nullptr)}};
  if (d.has_pre) j["pre"] = {{"mean", num(d.pre.mean)}, {"std", num(d.pre.std)}, {"hist", hist_json(d.pre_hist)}};
  return j;
}

json param_json(const ParamDiag& p) {
  json j{{"name", p.name},
         {"shape", p.is_1d ? json::array({p.cols}) : json::array({p.rows, p.cols})},
         {"data_mean", num(p.data.mean)},
         {"data_std", num(p.data.std)},
         {"grad_mean", num(p.grad.mean)},
         {"grad_std", num(p.grad.std)},
         {"grad_data_ratio", num(p.grad_data_ratio)},
         {"hist", hist_json(p.hist)}};
  if (p.update_data_log10) j["update_data_log10"] = num(*p.update_data_log10);
  return j;
}
}  // namespace

nlohmann::json snapshot_json(const Snapshot& s, bool with_saturation_map) {
  json layers = json::array(), params = json::array();
  for (const auto& d : s.layers) layers.push_back(layer_json(d));
  for (const auto& p : s.params) params.push_back(param_json(p));
  json j{{"step", s.step}, {"loss", num(s.loss)}, {"lr", s.lr}, {"batch", s.batch}, {"layers", layers}, {"params", params}};
  if (!s.inner.empty()) {  // inside the blocks; "index" is the block's
    json inner = json::array();
    for (const auto& d : s.inner) inner.push_back(layer_json(d));
    j["inner_layers"] = std::move(inner);
  }
  if (with_saturation_map) {
    const auto& m = s.saturation_map;
    j["saturation_map"] = m.layer >= 0 ? json{{"layer", m.layer}, {"type", m.type}, {"rows", m.rows}, {"cols", m.cols}, {"bits", m.bits}}
                                       : json(nullptr);
  }
  return j;
}

nlohmann::json ratios_json(const UpdateRatios& u, const ParamStore& params) {
  json r = json::object();
  std::size_t k = 0;
  for (const ParamInfo& p : params.infos()) {
    if (!p.trainable) continue;
    // Four decimals of a log10 are plenty for a plot and keep the per-step file small.
    r[p.name] = k < u.log10.size() ? num(std::round(u.log10[k] * 1e4) / 1e4) : json(nullptr);
    ++k;
  }
  return {{"step", u.step}, {"ratios", r}};
}

std::vector<UpdateRatios> read_update_ratios(const std::string& path, const ParamStore& params, int64_t before) {
  std::vector<UpdateRatios> out;
  std::ifstream in(path, std::ios::binary);
  std::string line;
  for (int64_t n = 1; std::getline(in, line); ++n) {
    const json j = json::parse(line, nullptr, false);
    if (!j.is_object() || !j.contains("step") || !j["step"].is_number_integer() || !j.contains("ratios") ||
        !j["ratios"].is_object())
      throw Error(fmt::format("{}:{}: not an update-ratio record; delete the file to continue without the earlier ratios", path, n));
    UpdateRatios u;
    u.step = j["step"].get<int64_t>();
    if (u.step >= before) break;
    for (const ParamInfo& p : params.infos()) {
      if (!p.trainable) continue;
      const auto it = j["ratios"].find(p.name);
      u.log10.push_back(it != j["ratios"].end() && it->is_number() ? it->get<double>() : NAN);
    }
    out.push_back(std::move(u));
  }
  return out;
}

nlohmann::json report_json(const Report& r) {
  json j = snapshot_json(r.snapshot, true);
  j["name"] = r.name;
  j["vocab_size"] = r.vocab_size;
  j["steps_trained"] = r.steps_trained;
  j["expected_loss"] = r.expected_loss;
  j["initial_loss"] = r.initial_loss ? num(*r.initial_loss) : json(nullptr);
  json buckets = json::array();
  for (double b : loss_buckets(r.losses, 1000)) buckets.push_back(num(b));
  j["loss_buckets"] = {{"size", 1000}, {"means", buckets}};
  json findings = json::array();
  for (const auto& f : r.findings)
    findings.push_back({{"id", f.id},
                        {"layer", f.layer >= 0 ? json(f.layer) : json(nullptr)},
                        {"message", f.message},
                        {"evidence", f.evidence},
                        {"fix", f.fix}});
  j["findings"] = findings;
  j["healthy"] = r.findings.empty();
  return j;
}

// ---- text -----------------------------------------------------------------------------------
std::string sparkline(const Histogram& h, int width) {
  static const char* const kBars[] = {"▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"};
  if (h.counts.empty() || width < 1) return {};
  // Merge bins down to `width` columns when there are more bins than columns.
  const std::size_t nb = h.counts.size();
  const std::size_t w = std::min(nb, static_cast<std::size_t>(width));
  std::vector<int64_t> cols(w, 0);
  for (std::size_t b = 0; b < nb; ++b) cols[b * w / nb] += h.counts[b];
  const int64_t top = *std::max_element(cols.begin(), cols.end());
  std::string s;
  for (int64_t c : cols) {
    if (c == 0 || top == 0) {
      s += ' ';
      continue;
    }
    const auto level = static_cast<std::size_t>(std::min<int64_t>(7, (c * 8 - 1) / top));
    s += kBars[level];
  }
  return s;
}

std::string format_report(const Report& r) {
  const Snapshot& s = r.snapshot;
  std::string o;
  auto line = [&o](const std::string& t) { o += t + "\n"; };
  line(fmt::format("{} at step {} ({} updates before it), minibatch of {}", r.name, s.step, r.steps_trained, s.batch));
  line(fmt::format("loss {:.4f} on this minibatch; initial loss {}; expected -ln(1/{}) = {:.4f}", s.loss,
                   r.initial_loss ? fmt::format("{:.4f}", *r.initial_loss) : std::string("unknown"), r.vocab_size,
                   r.expected_loss));
  const auto buckets = loss_buckets(r.losses, 1000);
  if (buckets.size() > 1) {
    std::string b;
    for (double v : buckets) b += fmt::format(" {:.4f}", v);
    line("mean loss per 1,000 steps:" + b);
  }

  const auto in_order = layers_in_order(s);
  line("\n--- activation distribution (bounded activations; |t| > 0.97 saturated, t the output on [-1, 1], as the "
       "lecture's cell 15)");
  for (const LayerDiag* d : in_order)
    if (d->bounded())
      line(fmt::format("layer {} ({:>10}): mean {:+.2f}, std {:.2f}, saturated: {:.2f}%", layer_name(*d), d->type, d->out.mean,
                       d->out.std, d->saturated_pct));
  line("--- saturation beyond |0.99| and dead units (|t| > 0.99 for every example)");
  for (const LayerDiag* d : in_order)
    if (d->bounded())
      line(fmt::format("layer {} ({:>10}): pre-activation mean {:+.2f} std {:.2f} | |t|>0.99 {:.2f}% | dead {} of {}{}",
                       layer_name(*d), d->type, d->pre.mean, d->pre.std, d->sat99_pct, d->dead_units, d->units,
                       d->dead_units_sample >= 0
                           ? fmt::format(" | sample: |t|>0.99 {:.2f}%, dead {}", d->sat99_pct_sample, d->dead_units_sample)
                           : std::string()));
  line("--- gradient distribution (cell 16)");
  for (const LayerDiag* d : in_order)
    if (d->bounded() && d->has_grad)
      line(fmt::format("layer {} ({:>10}): mean {:+f}, std {:e}", layer_name(*d), d->type, d->grad.mean, d->grad.std));
  line("--- weights gradient distribution (cell 17)");
  for (const auto& p : s.params) {
    if (p.is_1d) continue;
    line(fmt::format("weight {:>10} | mean {:+f} | std {:e} | grad:data ratio {:e}", fmt::format("({}, {})", p.rows, p.cols),
                     p.grad.mean, p.grad.std, p.grad_data_ratio));
  }
  if (s.updated) {
    line("--- update:data log10(std(update) / std(data)) at this step (cell 18; aim for about -3)");
    for (const auto& p : s.params)
      if (p.update_data_log10) line(fmt::format("{:<24} {:+.3f}", p.name, *p.update_data_log10));
  }

  line("\n--- histograms (output | pre-activation of a bounded activation | gradient of the output), ranges in brackets");
  auto range = [](const Histogram& h) { return fmt::format("[{:+.2g}, {:+.2g}]", h.lo, h.hi); };
  for (const LayerDiag* dp : in_order) {
    const LayerDiag& d = *dp;
    line(fmt::format("layer {:>2} {:<12} out  {:<18} {}", layer_name(d), d.type, range(d.hist), sparkline(d.hist)));
    if (d.has_pre) line(fmt::format("{:<22}pre  {:<18} {}", "", range(d.pre_hist), sparkline(d.pre_hist)));
    if (d.has_grad) line(fmt::format("{:<22}grad {:<18} {}", "", range(d.grad_hist), sparkline(d.grad_hist)));
  }

  line("");
  if (r.findings.empty()) {
    line("healthy: no findings (initial loss, saturation, dead units, gradient and activation scale across depth"
         + std::string(r.steps_trained > 0 && !r.ratios.empty() ? ", update:data" : "") + " all look as the lecture wants them)");
  } else {
    line(fmt::format("findings ({}):", r.findings.size()));
    for (const auto& f : r.findings) {
      line(fmt::format("[{}] {}", f.id, f.message));
      line("  evidence: " + f.evidence);
      line("  fix: " + f.fix);
    }
  }
  return o;
}

// ---- the run folder -------------------------------------------------------------------------
RunDiagnostics::RunDiagnostics(const std::string& dir, DiagOptions opt, bool append) : dir_(dir), obs_(opt) {
  snap_ = open_log(dir + "/" + kDiagnosticsFile, append);
  ratio_ = open_log(dir + "/" + kUpdateRatioFile, append);
  obs_.on_snapshot = [this](const Snapshot& s) {
    fmt::print(snap_, "{}\n", snapshot_json(s, false).dump());
  };
  obs_.on_ratios = [this](const UpdateRatios& u, const ParamStore& ps) {
    fmt::print(ratio_, "{}\n", ratios_json(u, ps).dump());
  };
}

RunDiagnostics::~RunDiagnostics() {
  if (snap_) std::fclose(snap_);
  if (ratio_) std::fclose(ratio_);
}

void RunDiagnostics::remove_stale(const std::string& dir) {
  for (const char* f : {kDiagnosticsFile, kUpdateRatioFile, kInspectFile}) remove_file(dir + "/" + f);
}

void RunDiagnostics::flush() {
  // Onto the disk, not only out of the buffer: a train state saved next counts these records.
  for (auto [f, file] : {std::pair{snap_, kDiagnosticsFile}, std::pair{ratio_, kUpdateRatioFile}})
    fsync_file(f, dir_ + "/" + file);
}

int64_t keep_records_before(const std::string& path, int64_t before) {
  // A link is not the run's own log: it goes (the link, not its target), and the log starts anew.
  if (is_symlink(path)) {
    remove_file(path);
    return 0;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return 0;
  int64_t records = 0;
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(std::move(line));
  std::string kept;
  for (std::size_t k = 0; k < lines.size(); ++k) {
    const json j = json::parse(lines[k], nullptr, false);
    // A killed run can leave its last line torn: dropped. Any other line that is not a record
    // is kept, for the reader to report.
    if (j.is_discarded() && k + 1 == lines.size()) continue;
    const bool record = j.is_object() && j.contains("step") && j["step"].is_number_integer();
    if (record && j["step"].get<int64_t>() >= before) continue;
    records += record ? 1 : 0;
    kept += lines[k] + "\n";
  }
  in.close();
  write_file_atomic(path, kept);
  return records;
}

Report RunDiagnostics::write_inspect(const Model& model, const std::string& name, int vocab_size) {
  flush();
  Report r;
  r.name = name;
  r.vocab_size = vocab_size;
  r.expected_loss = std::log(static_cast<double>(vocab_size));
  if (!obs_.losses().empty()) r.initial_loss = obs_.losses().front();
  r.losses = obs_.losses();
  r.ratios = obs_.ratios();
  if (obs_.last()) {
    r.snapshot = *obs_.last();
    r.steps_trained = r.snapshot.step;
  }
  r.findings = diagnose(r, model);
  write_file_atomic(dir_ + "/" + kInspectFile, report_json(r).dump(1) + "\n");
  return r;
}

}  // namespace mm
