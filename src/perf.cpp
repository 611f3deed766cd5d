// FLOP accounting, the FMA peak micro-benchmark, and which processor it ran on.
#include "makemore/perf.h"

#include <fmt/format.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <map>
#include <utility>

#include "kernels/kernels.h"
#include "makemore/layer_kinds.h"
#include "makemore/optim.h"
#include "makemore/rng.h"
#include "makemore/train.h"

namespace mm {

double step_matmul_flops(const Model& model, int batch) {
  double flops = 0;
  for (const Layer* l : model.all_layers()) {  // Linears inside residual blocks included
    if (!l->kind().is(LayerRole::Matmul)) continue;
    const double rows = static_cast<double>(batch) * (l->in_time() > 0 ? l->in_time() : 1);
    flops += 3.0 * 2.0 * rows * l->in_features() * l->out_features();
  }
  return flops;
}

double peak_memory_mb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) / 1024.0;  // kilobytes on Linux
}

std::string cpu_description() {
  std::ifstream in("/proc/cpuinfo");
  std::string line, name, family, model;
  auto value = [](const std::string& l) {
    const auto colon = l.find(':');
    std::string v = colon == std::string::npos ? "" : l.substr(colon + 1);
    const auto b = v.find_first_not_of(" \t");
    return b == std::string::npos ? std::string() : v.substr(b);
  };
  while (std::getline(in, line) && (name.empty() || family.empty() || model.empty())) {
    if (line.rfind("model name", 0) == 0 && name.empty())
      name = value(line);
    else if (line.rfind("cpu family", 0) == 0 && family.empty())
      family = value(line);
    else if (line.rfind("model", 0) == 0 && line.rfind("model name", 0) != 0 && model.empty())
      model = value(line);
  }
  if (name.empty()) return "unknown CPU";
  if (!family.empty() && !model.empty()) name += ", family " + family + " model " + model;
  return name;
}

// The FMA loop is the kernel set's (kernels/kernels.cpp): its widest vectors, FMAs where it has them.
const char* fma_vector_isa() { return kernels::kernels().vectors; }
double measure_fma_peak_gflops(double seconds) { return kernels::kernels().fma_peak_gflops(seconds); }

}  // namespace mm

namespace mm {

namespace {
// steady_clock reads the vDSO (~20 ns); the thread CPU clock is a system call here (~1.3 us).
double now_ns() { return std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

std::string kind_of(const Layer& l) { return role_name(l.kind().traits.role); }
const char* pass_name(Pass p) { return p == Pass::Forward ? "forward" : "backward"; }

// Every layer's forward and backward time (nested layers included), summed over the timed steps,
// and when the first layer of a pass began (where the backward's loss gradient ends).
class LayerClock final : public LayerProbe {
 public:
  bool timing = false;
  double first_begin = 0;  // the first begin() since it was last set to 0

  void begin(const Layer&, Pass) override {
    const double t = now_ns();
    if (first_begin == 0) first_begin = t;
    open_.push_back(t);
  }
  void end(const Layer& layer, Pass pass) override {
    const double t = now_ns() - open_.back();
    open_.pop_back();
    if (timing) ns_[{&layer, pass}] += t;
  }
  // Inside some layer's begin() and end(): a wide Linear updates its weight's rows inside its
  // backward (Linear::set_weight_rows_done), and that time is the layer's.
  bool in_layer() const { return !open_.empty(); }
  double ns(const Layer& layer, Pass pass) const {
    const auto it = ns_.find({&layer, pass});
    return it == ns_.end() ? 0.0 : it->second;
  }

 private:
  std::vector<double> open_;
  std::map<std::pair<const Layer*, Pass>, double> ns_;
};

// The parts of the step outside the layers, summed over the timed steps.
struct StepParts {
  double gather = 0, loss = 0, check = 0, loss_backward = 0, update = 0;
};

// Names the parts, in the order the step runs them, with the time per step of each; a block
// (Residual) gets a group row, its layers' rows below it and a row for its own part.
class ProfileLabels {
 public:
  ProfileLabels(const LayerClock& clock, int64_t steps) : clock_(clock), steps_(static_cast<double>(steps)) {}

  void part(std::string what, std::string kind, double ns, int depth = 0, bool group = false) {
    prof.entries.push_back({std::move(what), std::move(kind), ns / steps_, depth, group});
    if (!group) prof.total_ns += prof.entries.back().ns_per_step;
  }
  void layer(Layer& l, Pass pass, const std::string& name, int depth = 0) {
    const double ns = clock_.ns(l, pass);
    const auto kids = l.children();
    if (kids.empty()) return part(fmt::format("{} {} {}", name, l.describe(), pass_name(pass)), kind_of(l), ns, depth);
    part(fmt::format("{} {} {}", name, l.type(), pass_name(pass)), kind_of(l), ns, depth, true);
    double inside = 0;
    for (std::size_t n = 0; n < kids.size(); ++n) {
      const std::size_t j = pass == Pass::Forward ? n : kids.size() - 1 - n;
      layer(*kids[j], pass, fmt::format("{}.layers.{}", name, j), depth + 1);
      inside += clock_.ns(*kids[j], pass);
    }
    part(fmt::format("{} {}, outside its layers, {}", name, l.type(), pass_name(pass)), kind_of(l), std::max(0.0, ns - inside),
         depth + 1);
  }

  StepProfile prof;

 private:
  const LayerClock& clock_;
  double steps_;
};

StepProfile label_profile(const LayerClock& clock, const StepParts& t, int64_t steps, const Config& cfg, Model& model,
                          bool by_layer) {
  ProfileLabels out(clock, steps);
  auto& layers = model.stack().layers();
  out.part("minibatch gather (randint + rows)", "gather", t.gather);
  out.part("embedding forward (rows of C, flattened)", "gather", clock.ns(model.embedding(), Pass::Forward));
  for (std::size_t i = 0; i < layers.size(); ++i) out.layer(*layers[i], Pass::Forward, fmt::format("layers.{}", i));
  out.part("softmax + cross-entropy forward", "softmax", t.loss);
  out.part("finiteness check of every activation", "other", t.check);
  out.part("softmax + cross-entropy backward", "softmax", t.loss_backward);
  for (std::size_t i = layers.size(); i-- > 0;) out.layer(*layers[i], Pass::Backward, fmt::format("layers.{}", i));
  out.part("embedding backward (scatter-add)", "gather", clock.ns(model.embedding(), Pass::Backward));
  out.part(fmt::format("{} update{}", cfg.optimizer.name(),
                       by_layer                 ? " (layer by layer, inside the backward)"
                       : cfg.clip_grad_norm > 0 ? " (+ clipping)"
                                                : ""),
           "optimizer", t.update);
  return std::move(out.prof);
}

}  // namespace

StepProfile profile_steps(Model& model, const Config& cfg, const Examples& train, int64_t steps) {
  Optimizer opt(cfg.optimizer, model.params().values().size());
  TorchGenerator gen(cfg.seed);
  const auto B = static_cast<std::size_t>(cfg.batch_size);
  std::vector<int64_t> ix(B);
  std::vector<int32_t> xb(B * static_cast<std::size_t>(cfg.block_size)), yb(B);
  const bool by_layer = can_update_inside_backward(cfg, model);
  LayerClock clock;
  const ScopedLayerProbe probe(&clock);
  StepParts acc;
  const int64_t warm = std::min<int64_t>(steps, 200);
  int64_t non_finite_steps = 0;
  for (int64_t s = 0; s < warm + steps; ++s) {
    clock.timing = s >= warm;
    double t = now_ns(), update = 0;
    auto lap = [&](double& into) {
      const double now = now_ns();
      if (clock.timing) into += now - t;
      t = now;
    };
    // Trainer::step's calls, in its order.
    draw_minibatch(gen, train, cfg.block_size, ix, xb, yb);
    lap(acc.gather);
    ForwardContext ctx(Mode::Train, &gen);
    ctx.scratch_outputs = true;  // as Trainer::step without observers
    model.forward(xb.data(), static_cast<int>(B), ctx);
    t = now_ns();  // the layers timed themselves
    model.loss(yb.data());
    lap(acc.loss);
    non_finite_steps += model.outputs_finite() ? 0 : 1;
    lap(acc.check);
    // The backward: the loss's gradient until the first layer's backward begins, then the
    // layers (timed by the clock), with the update inside it or after it.
    const double backward_began = t;
    clock.first_begin = 0;
    const double lr = cfg.lr_at(s);
    auto timed_update = [&](auto&& f) {
      const double u0 = now_ns();
      f();
      update += now_ns() - u0;
    };
    if (by_layer) {
      float* p = model.params().values().data();
      const float* g = model.params().grads().data();
      model.backward([&](std::size_t k0, std::size_t k1, std::size_t row) {
        if (clock.in_layer())  // on any of the layer's threads: timed as the layer's
          opt.update(p, g, lr, k0, k1, row);
        else
          timed_update([&] { opt.update(p, g, lr, k0, k1, row); });
      });
      timed_update([&] { opt.advance(); });
    } else {
      model.backward();
      timed_update([&] {
        if (cfg.clip_grad_norm > 0) clip_grad_norm(model.params().grads(), cfg.clip_grad_norm);
        opt.step(model.params().values(), model.params().grads(), lr);
      });
    }
    if (clock.timing) {
      acc.loss_backward += clock.first_begin - backward_began;
      acc.update += update;
    }
  }
  StepProfile prof = label_profile(clock, acc, steps, cfg, model, by_layer);
  prof.non_finite_steps = non_finite_steps;
  return prof;
}

}  // namespace mm
