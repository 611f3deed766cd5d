// The diagnostics observer (snapshot.h). It only reads what the step already computed (each
// layer's cached output, the gradients each Sequential keeps, the ParamStore buffers); the one
// extra forward is the dead-unit sample, taken after backward on a twin of the model so the
// step's update is untouched.
#include <algorithm>
#include <cmath>
#include <limits>

#include "makemore/layer_kinds.h"
#include "makemore/snapshot.h"

namespace mm {

namespace {
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

void walk(const Sequential& seq, int top, const std::string& prefix, std::vector<LayerSite>& out) {
  const auto& ls = seq.layers();
  for (std::size_t j = 0; j < ls.size(); ++j) {
    const int t = prefix.empty() ? static_cast<int>(j) : top;
    const std::string name = prefix.empty() ? std::to_string(j) : prefix + "." + std::to_string(j);
    out.push_back({ls[j].get(), &seq, j, t, name});
    if (const auto* r = dynamic_cast<const Residual*>(ls[j].get())) walk(r->branch(), t, name, out);
  }
}
}  // namespace

const Mat* LayerSite::input() const { return pos == 0 ? owner->input() : &owner->layers()[pos - 1]->out(); }

std::vector<LayerSite> walk_layers(const Model& model) {
  std::vector<LayerSite> out;
  walk(model.stack(), 0, "", out);
  return out;
}

bool LayerDiag::bounded() const { return kind && kind->bounded(); }

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

namespace {

// The scale saturation is measured on: the layer's bounds, or [-1, 1] (|out|) when it has none.
SaturationScale saturation_scale(const LayerKind& k) {
  return k.traits.bounds ? SaturationScale::of(k.traits.bounds->lo, k.traits.bounds->hi) : SaturationScale{};
}

}  // namespace

std::vector<uint8_t> saturation_mask(const Mat& out, const LayerKind& kind) {
  const SaturationScale sat = saturation_scale(kind);
  const auto n = static_cast<std::size_t>(out.size());
  std::vector<uint8_t> mask(n);
  for (std::size_t k = 0; k < n; ++k) mask[k] = std::fabs((out.data()[k] - sat.center) * sat.scale) > 0.99f;
  return mask;
}

namespace {

// histogram(), or none when bins is 0 (DiagOptions::bins: a snapshot that only wants the
// moments, as a study's at-init summary).
Histogram histogram_or_none(const float* x, std::size_t n, int bins, double lo = 0, double hi = 0) {
  return bins == 0 ? Histogram{} : histogram(x, n, bins, lo, hi);
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
  d.hist = bounds ? histogram_or_none(o.data(), n, bins, bounds->lo, bounds->hi) : histogram_or_none(o.data(), n, bins);
  if (bounds) {
    d.dead_units = count_dead_columns(o, 0.99f, sat);
    if (pre) {
      d.has_pre = true;
      d.pre = moments(pre->data(), static_cast<std::size_t>(pre->size()));
      d.pre_hist = histogram_or_none(pre->data(), static_cast<std::size_t>(pre->size()), bins);
    }
  }
  return d;
}

// The lecture's plt.imshow(h.abs() > 0.99): '1' where a unit of this minibatch is saturated.
SaturationMap saturation_map(const Layer& l, const LayerDiag& d) {
  const Mat& o = l.out();
  const auto n = static_cast<std::size_t>(o.size());
  SaturationMap m;
  m.layer = d.index;
  m.type = d.type;
  m.rows = static_cast<int>(o.rows());
  m.cols = static_cast<int>(o.cols());
  m.bits.resize(n);
  const std::vector<uint8_t> mask = saturation_mask(o, *d.kind);
  for (std::size_t k = 0; k < n; ++k) m.bits[k] = mask[k] ? '1' : '0';
  return m;
}

void add_grad(LayerDiag& d, const Mat& g, std::size_t out_size, int bins) {
  if (static_cast<std::size_t>(g.size()) != out_size) return;  // no backward ran
  d.has_grad = true;
  d.grad = moments(g.data(), static_cast<std::size_t>(g.size()));
  d.grad_hist = histogram_or_none(g.data(), static_cast<std::size_t>(g.size()), bins);
}

// Each snapshot layer with its site in `sites`: the walk of the model it was taken from, or of
// a twin of it (the same tree).
template <class F>
void for_each_site(Snapshot& s, const std::vector<LayerSite>& sites, F f) {
  std::size_t top = 0, inner = 0;
  for (const LayerSite& site : sites) {
    std::vector<LayerDiag>& list = site.in_block() ? s.inner : s.layers;
    std::size_t& k = site.in_block() ? inner : top;
    if (k < list.size()) f(list[k++], site);
  }
}

std::vector<ParamDiag> param_grads(const ParamStore& ps, int bins) {
  std::vector<ParamDiag> out;
  for (const ParamInfo& p : ps.infos()) {
    if (!p.trainable) continue;
    const float* g = ps.grads().data() + p.offset;
    ParamDiag d;
    d.name = p.name;
    d.rows = p.rows;
    d.cols = p.cols;
    d.is_1d = p.is_1d;
    d.grad = moments(g, p.size());
    d.hist = histogram_or_none(g, p.size(), bins);
    out.push_back(std::move(d));
  }
  return out;
}

}  // namespace

bool DiagObserver::snapshot_step(int64_t step) const {
  return (opt_.every > 0 && step % opt_.every == 0) || step == opt_.last_step;
}

bool DiagObserver::ratio_step(int64_t step) const {
  return step < opt_.ratio_dense_steps || (opt_.ratio_every > 0 && step % opt_.ratio_every == 0) || snapshot_step(step);
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
  for (const LayerSite& site : walk_layers(model)) {
    LayerDiag d = layer_diag(*site.layer, site.input(), site.top, site.name, opt_.bins);
    if (!site.in_block() && d.bounded() && s.saturation_map.layer < 0) s.saturation_map = saturation_map(*site.layer, d);
    (site.in_block() ? s.inner : s.layers).push_back(std::move(d));
  }
  current_ = std::move(s);
}

void DiagObserver::capture_backward(Model& model, int64_t /*step*/) {
  ParamStore& ps = model.params();
  if (current_) {
    for_each_site(*current_, walk_layers(model), [this](LayerDiag& d, const LayerSite& site) {
      add_grad(d, site.dout(), static_cast<std::size_t>(site.layer->out().size()), opt_.bins);
    });
    current_->params = param_grads(ps, opt_.bins);
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
      r = update_data_log10(a, before_.data() + p.offset, p.size());
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
  for_each_site(*current_, walk_layers(*twin_), [](LayerDiag& d, const LayerSite& site) {
    if (!d.bounded()) return;
    const Mat& o = site.layer->out();
    const SaturationScale sat = saturation_scale(*d.kind);
    d.dead_units_sample = count_dead_columns(o, 0.99f, sat);
    d.sat99_pct_sample = 100.0 * fraction_beyond(o.data(), static_cast<std::size_t>(o.size()), 0.99f, sat);
  });
}

}  // namespace mm
