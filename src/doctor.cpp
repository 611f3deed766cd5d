// The doctor's rules (doctor.h): one function per finding id, each reading the Exam (the
// diagnosis, the model and one walk of its layer tree), and the table that lists them. The
// thresholds are doctor.h's, so tests and docs quote the same numbers.
#include "makemore/doctor.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "makemore/error.h"
#include "makemore/layer_kinds.h"
#include "makemore/stats.h"

namespace mm {

Exam::Exam(const Diagnosis& diag, const Model& m)
    : d(diag), model(m), sites(walk_layers(m)), layers(layers_in_order(diag.snapshot)) {}

const LayerSite* Exam::site_of(const LayerDiag& l) const {
  for (const LayerSite& s : sites)
    if (s.name == l.name || (l.name.empty() && !s.in_block() && s.top == l.index)) return &s;
  return nullptr;
}

namespace {

// ---- what the rules share ---------------------------------------------------------------------
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

// A gain as the lecture writes it: 5/3, 1, or decimals.
std::string gain_text(double g) {
  for (int q = 1; q <= 12; ++q)
    if (const double p = g * q; std::fabs(p - std::round(p)) < 1e-9)
      return q == 1 ? fmt::format("{}", std::lround(p)) : fmt::format("{}/{}", std::lround(p), q);
  return fmt::format("{:.3f}", g);
}

// Where a bounded activation counts as saturated (|u| > 0.99 in stats.h's terms), in its units.
std::string saturated_range(const LayerTraits::Bounds& b) {
  if (b.lo == -b.hi) return fmt::format("beyond |{:g}|", 0.99 * b.hi);
  const double margin = 0.005 * (b.hi - b.lo);
  return fmt::format("below {:g} or above {:g}", b.lo + margin, b.hi - margin);
}

// The Linear that feeds a layer directly (in its own sequence: the stack, or a block's
// branch), its position there, and whether a normalization sits between them.
struct Feed {
  const Linear* linear = nullptr;
  std::size_t at = 0;
  bool through_norm = false;
};
Feed feeding_linear(const LayerSite& site) {
  Feed f;
  const auto& seq = site.owner->layers();
  for (std::size_t k = site.pos; k-- > 0;) {
    if (const auto* lin = dynamic_cast<const Linear*>(seq[k].get())) {
      f.linear = lin;
      f.at = k;
      return f;
    }
    const LayerKind& kind = seq[k]->kind();
    if (kind.is(LayerRole::Normalization)) f.through_norm = true;
    // another activation reshapes the distribution; a residual's output is not one Linear's
    if (kind.is(LayerRole::Activation) || kind.is(LayerRole::Block)) break;
  }
  return f;
}

// The cure for a saturated bounded activation: the Kaiming scale for the Linear feeding it,
// with its numbers and the config spelling, unless a normalization sets the scale.
std::string saturation_cure(const Exam& e, const LayerDiag& d) {
  const LayerKind& act = *d.kind;
  const double gain = act.traits.kaiming_gain.value_or(1.0);
  const LayerSite* site = e.site_of(d);
  const Feed f = site ? feeding_linear(*site) : Feed{};
  if (f.through_norm)
    return "the pre-activation passes a normalization layer (BatchNorm1d, LayerNorm or GroupNorm) whose gamma / "
           "beta set its scale: lower the learning rate, or check that gamma has not grown large";
  if (!f.linear)
    return fmt::format("scale down the pre-activation: initialize the layer feeding this {} with gain/sqrt(fan_in), gain {}",
                       d.type, gain_text(gain));
  const Linear& L = *f.linear;
  const int fan_in = L.in_features();
  const std::string w = param_name(e.model, L, 0);
  const ParamDiag* pw = find_param(e.d.snapshot, w);
  const std::string prefix = site->in_block() ? site->name.substr(0, site->name.rfind('.') + 1) : "";
  return fmt::format(
      "initialize {} with the Kaiming scale gain/sqrt(fan_in) = ({})/sqrt({}) = {:.3f}{} (config: \"weight_init\": "
      "{{\"kind\": \"kaiming\", \"gain\": \"{}\"}}){}, or put a BatchNorm1d between layer {} and the {}",
      w, gain_text(gain), fan_in, gain / std::sqrt(static_cast<double>(fan_in)),
      pw ? fmt::format(" instead of its std {:.3f}", pw->data.std) : "", act.traits.kaiming_gain ? act.name : "linear",
      L.has_bias() ? fmt::format(" and shrink its bias {} by 0.01 (\"bias_init\": {{\"kind\": \"normal\", \"scale\": 0.01}})",
                                 param_name(e.model, L, 1))
                   : "",
      prefix + std::to_string(f.at), d.type);
}

// The bounded activations in forward order, those inside residual blocks too.
std::vector<const LayerDiag*> bounded_layers(const Exam& e) {
  std::vector<const LayerDiag*> out;
  for (const LayerDiag* l : e.layers)
    if (l->bounded()) out.push_back(l);
  return out;
}

// ---- the rules --------------------------------------------------------------------------------

// Confidently wrong at initialization: the hockey-stick loss curve of the lecture.
std::vector<Finding> overconfident_output(const Exam& e) {
  const Diagnosis& r = e.d;
  if (!r.initial_loss || !(*r.initial_loss > r.expected_loss + doctor::kOverconfidentExcess)) return {};
  const auto& layers = e.model.stack().layers();
  const Linear* last = nullptr;
  int last_at = -1;
  for (std::size_t i = 0; i < layers.size(); ++i) {
    if (const auto* lin = dynamic_cast<const Linear*>(layers[i].get())) {
      last = lin;
      last_at = static_cast<int>(i);
    }
  }
  Finding f{"overconfident-output", last_at, "", "", ""};
  f.message = fmt::format(
      "the initial loss {:.4f} is far above ln({}) = {:.4f}, the loss of a uniform guess: the network starts "
      "confidently wrong, and its first thousands of steps go to squashing the logits (the hockey-stick loss "
      "curve) instead of learning",
      *r.initial_loss, r.vocab_size, r.expected_loss);
  f.evidence = fmt::format("initial loss {:.4f} vs expected {:.4f} (+{:.2f})", *r.initial_loss, r.expected_loss,
                           *r.initial_loss - r.expected_loss);
  if (r.steps_trained == 0 && !r.snapshot.layers.empty()) {
    const Moments& lo = r.snapshot.layers.back().out;
    f.evidence += fmt::format("; logits range [{:.1f}, {:.1f}], std {:.2f}", lo.min, lo.max, lo.std);
  }
  if (!last) {
    f.fix = "scale the weights of the layer producing the logits by about 0.01 and zero its bias";
    return {f};
  }
  const std::string w = param_name(e.model, *last, 0);
  const ParamDiag* pw = find_param(r.snapshot, w);
  f.fix = fmt::format(
      "scale the last layer's weights {} by about 0.01{} so the logits start near 0 and the loss "
      "near {:.2f}: in the config, its \"weight_init\": {{\"kind\": \"normal\", \"scale\": 0.01}}",
      w, pw ? fmt::format(" (std {:.3g} -> {:.3g})", pw->data.std, pw->data.std * 0.01) : "", r.expected_loss);
  if (last->has_bias())
    f.fix += fmt::format(" and zero its bias {}: \"bias_init\": {{\"kind\": \"zeros\"}}", param_name(e.model, *last, 1));
  return {f};
}

// Saturated units of a bounded activation: a local gradient near 0 (tanh's 1 - t^2) blocks
// the gradient. Judged on the larger sample when it was taken.
std::vector<Finding> saturated_activations(const Exam& e) {
  std::vector<Finding> out;
  for (const LayerDiag* dp : bounded_layers(e)) {
    const LayerDiag& d = *dp;
    const bool sampled = d.sat99_pct_sample >= 0;
    const double pct = sampled ? d.sat99_pct_sample : d.sat99_pct;
    if (!(pct > doctor::kSaturatedPct)) continue;
    const std::string range = saturated_range(*d.kind->traits.bounds);
    Finding f{"saturated-activations", d.index, "", "", saturation_cure(e, d)};
    f.message = fmt::format(
        "{}: {:.1f}% of the activations are {}, where the local gradient is below 2% of its peak: those units "
        "pass almost no gradient back, so the layers before them learn slowly",
        layer_label(d), pct, range);
    f.evidence = fmt::format("{:.1f}% of the {}x{} minibatch activations {}", d.sat99_pct,
                             d.units > 0 ? (d.out.n + d.out.nonfinite) / d.units : 0, d.units, range);
    if (sampled) f.evidence += fmt::format(", {:.1f}% over the larger sample", d.sat99_pct_sample);
    if (d.has_pre) f.evidence += fmt::format("; pre-activation mean {:+.2f}, std {:.2f}", d.pre.mean, d.pre.std);
    out.push_back(std::move(f));
  }
  return out;
}

// Units saturated for every example of the sample: they never learn.
std::vector<Finding> dead_units(const Exam& e) {
  std::vector<Finding> out;
  for (const LayerDiag* dp : bounded_layers(e)) {
    const LayerDiag& d = *dp;
    if (d.dead_units_sample <= 0) continue;
    Finding f{"dead-units", d.index, "", "", ""};
    f.message = fmt::format(
        "{}: {} of {} units are {} for every example of the sample (a whole white column in the "
        "saturation map): their gradient is ~0 for all inputs, so they never learn",
        layer_label(d), d.dead_units_sample, d.units, saturated_range(*d.kind->traits.bounds));
    f.evidence = fmt::format("{} dead over the sample, {} over the {}-example minibatch", d.dead_units_sample, d.dead_units,
                             e.d.snapshot.batch);
    f.fix = saturation_cure(e, d) + (e.d.steps_trained > 0 ? "; if they died during training, lower the learning rate" : "");
    out.push_back(std::move(f));
  }
  return out;
}

// The gradient's std at the first and at the last bounded activation, when both were recorded.
struct GradientSpan {
  const LayerDiag *first = nullptr, *last = nullptr;
  std::string evidence, acts;
};
std::optional<GradientSpan> gradient_span(const Exam& e) {
  const auto acts = bounded_layers(e);
  if (acts.size() < 2 || !acts.front()->has_grad || !acts.back()->has_grad) return std::nullopt;
  GradientSpan g{acts.front(), acts.back(), "", ""};
  g.evidence = fmt::format("gradient std {:.3e} at {} vs {:.3e} at {}", g.first->grad.std, layer_label(*g.first),
                           g.last->grad.std, layer_label(*g.last));
  g.acts = g.first->kind == g.last->kind ? fmt::format("{} layer", g.first->kind->name) : "bounded activation";
  return g;
}

constexpr const char* kDepthCure =
    "initialize every Linear with N(0,1) * gain / sqrt(fan_in) and gain 5/3 for tanh (\"weight_init\": {\"kind\": "
    "\"kaiming\", \"gain\": \"tanh\"}), or put a BatchNorm1d after each Linear";

std::vector<Finding> vanishing_gradients(const Exam& e) {
  const auto g = gradient_span(e);
  if (!g || !(g->first->grad.std * doctor::kDepthFactor < g->last->grad.std)) return {};
  return {{"vanishing-gradients", -1,
           fmt::format("the gradient shrinks {:.0f}x on its way back from the last to the first {}: the early layers "
                       "barely learn",
                       g->last->grad.std / std::max(g->first->grad.std, 1e-300), g->acts),
           g->evidence, kDepthCure}};
}

std::vector<Finding> exploding_gradients(const Exam& e) {
  const auto g = gradient_span(e);
  if (!g || !(g->first->grad.std > doctor::kDepthFactor * g->last->grad.std)) return {};
  return {{"exploding-gradients", -1,
           fmt::format("the gradient grows {:.0f}x on its way back from the last to the first {}: the early layers take "
                       "steps far larger than the late ones",
                       g->first->grad.std / std::max(g->last->grad.std, 1e-300), g->acts),
           g->evidence, std::string(kDepthCure) + " (a gain above 5/3 amplifies each layer)"}};
}

// The layers whose output std should stay put across depth: the bounded activations, or when
// there are fewer than two of them the Linear layers before the logits.
std::vector<const LayerDiag*> depth_layers(const Exam& e) {
  std::vector<const LayerDiag*> out = bounded_layers(e);
  if (out.size() >= 2) return out;
  out.clear();
  const auto& s = e.d.snapshot;
  for (std::size_t i = 0; i + 1 < s.layers.size(); ++i)
    if (s.layers[i].kind && s.layers[i].kind->is(LayerRole::Matmul)) out.push_back(&s.layers[i]);
  return out;
}

std::string activation_evidence(const LayerDiag& a, const LayerDiag& b) {
  return fmt::format("output std {:.3g} at {} vs {:.3g} at {}", a.out.std, layer_label(a), b.out.std, layer_label(b));
}

std::vector<Finding> activations_collapse(const Exam& e) {
  const auto dl = depth_layers(e);
  if (dl.size() < 2 || !(dl.back()->out.std * doctor::kDepthFactor < dl.front()->out.std)) return {};
  return {{"activations-collapse", -1, "the activations shrink toward zero with depth: the deep layers see almost constant input",
           activation_evidence(*dl.front(), *dl.back()),
           "raise the weight scale to gain / sqrt(fan_in) (gain 5/3 for tanh, 1 for linear), or put a BatchNorm1d "
           "after each Linear"}};
}

std::vector<Finding> activations_explode(const Exam& e) {
  const auto dl = depth_layers(e);
  if (dl.size() < 2 || !(dl.back()->out.std > doctor::kDepthFactor * dl.front()->out.std)) return {};
  return {{"activations-explode", -1, "the activations grow with depth: the deep layers saturate or overflow",
           activation_evidence(*dl.front(), *dl.back()),
           "lower the weight scale to gain / sqrt(fan_in) (gain 5/3 for tanh, 1 for linear), or put a BatchNorm1d "
           "after each Linear"}};
}

// Each 2-D weight's mean log10 update:data over the last recorded steps, outside 1e-4..1e-2.
struct RatioCheck {
  std::vector<std::string> low, high;
  std::vector<double> bad;
  std::size_t checked = 0;
};
RatioCheck check_ratios(const Exam& e) {
  RatioCheck c;
  const auto& ratios = e.d.ratios;
  std::size_t k = 0;
  for (const ParamInfo& p : e.model.params().infos()) {
    if (!p.trainable) continue;
    const std::size_t idx = k++;
    if (p.is_1d || p.rows < 2) continue;
    Welford w;
    const std::size_t n = ratios.size();
    const std::size_t from = n > static_cast<std::size_t>(doctor::kUpdateWindow) ? n - doctor::kUpdateWindow : 0;
    for (std::size_t j = from; j < n; ++j)
      if (idx < ratios[j].log10.size() && std::isfinite(ratios[j].log10[idx])) w.add(ratios[j].log10[idx]);
    if (w.count() == 0) continue;
    ++c.checked;
    const double m = w.mean();
    if (m < doctor::kUpdateLow)
      c.low.push_back(fmt::format("{} {:.2f}", p.name, m));
    else if (m > doctor::kUpdateHigh)
      c.high.push_back(fmt::format("{} {:.2f}", p.name, m));
    else
      continue;
    c.bad.push_back(m);
  }
  return c;
}

std::string ratio_evidence(const RatioCheck& c, const char* slow, const char* fast) {
  std::string ev = "log10(std(update) / std(data)), mean over the last recorded steps: ";
  if (!c.low.empty()) ev += slow + fmt::format("{}", fmt::join(c.low, ", "));
  if (!c.low.empty() && !c.high.empty()) ev += "; ";
  if (!c.high.empty()) ev += fast + fmt::format("{}", fmt::join(c.high, ", "));
  return ev;
}

// update:data far from the lecture's ~1e-3 (2-D weights, as the lecture plots them).
std::vector<Finding> update_ratio(const Exam& e) {
  if (e.d.steps_trained <= 0 || e.d.ratios.empty()) return {};
  RatioCheck c = check_ratios(e);
  if (c.bad.empty()) return {};
  if (2 * c.bad.size() <= c.checked) {
    // A few weights off while most are near 1e-3: the learning rate is shared, so changing it
    // would move the others out of range. The lecture's own case: an output layer scaled down
    // at initialization updates fast relative to its small values until it grows.
    return {{"update-ratio", -1,
             fmt::format("{} of {} weights update{} far from the lecture's ~1e-3 of their values", c.bad.size(), c.checked,
                         c.bad.size() == 1 ? "s" : ""),
             ratio_evidence(c, "slow: ", "fast: ") +
                 fmt::format("; the other {} weights are within 1e-4..1e-2", c.checked - c.bad.size()),
             "keep the learning rate (it suits the other weights); look at those weights' initial scale: a layer "
             "scaled down at initialization, like the lecture's output layer, updates fast until its weights grow, "
             "and that is expected early in training"}};
  }
  std::sort(c.bad.begin(), c.bad.end());
  const double med = c.bad[c.bad.size() / 2];
  const double lr = e.d.snapshot.lr > 0 ? e.d.snapshot.lr : 0.1;
  return {{"update-ratio", -1,
           fmt::format("the updates are {} relative to the parameters (the lecture aims for about 1e-3, -3 on the log "
                       "scale): the network {}",
                       med < -3 ? "tiny" : "large", med < -3 ? "learns too slowly" : "may be unstable"),
           ratio_evidence(c, "too slow: ", "too fast: "),
           fmt::format("set the learning rate to about {:.3g} (now {:.3g}: x10^({:.1f}))", lr * std::pow(10.0, -3.0 - med), lr,
                       -3.0 - med)}};
}

}  // namespace

const std::vector<DoctorRule>& doctor_rules() {
  static const std::vector<DoctorRule> rules{
      {"overconfident-output", "the initial loss against ln(vocab)", overconfident_output},
      {"saturated-activations", "each bounded activation's share of saturated outputs", saturated_activations},
      {"dead-units", "units of a bounded activation saturated for every example of the sample", dead_units},
      {"vanishing-gradients", "the gradient std at the first and the last bounded activation", vanishing_gradients},
      {"exploding-gradients", "the gradient std at the first and the last bounded activation", exploding_gradients},
      {"activations-collapse", "the output std at the first and the last bounded activation", activations_collapse},
      {"activations-explode", "the output std at the first and the last bounded activation", activations_explode},
      {"update-ratio", "each weight's update:data over the last recorded steps", update_ratio},
  };
  return rules;
}

std::vector<Finding> diagnose(const Diagnosis& d, const Model& model) {
  const Exam e(d, model);
  std::vector<Finding> out;
  for (const DoctorRule& rule : doctor_rules())
    for (Finding& f : rule.find(e)) out.push_back(std::move(f));
  return out;
}

Diagnosis inspect_training(const Config& cfg_in, const Splits& splits, int vocab_size, int64_t steps,
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
    throw Error(
        fmt::format("training diverged at step {} (loss is not finite) before step {} could be measured; "
                    "inspect fewer steps or lower the learning rate",
                    st.diverged_step, steps));
  Diagnosis r;
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

}  // namespace mm
