// FLOP accounting, the FMA peak micro-benchmark, and which processor it ran on.
#include "makemore/perf.h"

#include <fmt/format.h>
#include <sys/resource.h>

#include <chrono>
#include <fstream>

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
double thread_ns() {
  return std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::string kind_of(const Layer& l) { return role_name(l.kind().traits.role); }

// The trainer's minibatch: `ix.size()` rows drawn from `train`, their contexts into `tokens`
// and their targets into `yb`.
void gather_minibatch(TorchGenerator& gen, const Examples& train, int T, std::vector<int64_t>& ix, std::vector<int32_t>& tokens,
                      std::vector<int32_t>& yb) {
  gen.randint(0, static_cast<int64_t>(train.size()), ix.data(), ix.size());
  for (std::size_t b = 0; b < ix.size(); ++b) {
    const std::size_t r = static_cast<std::size_t>(ix[b]);
    for (int j = 0; j < T; ++j)
      tokens[b * static_cast<std::size_t>(T) + static_cast<std::size_t>(j)] =
          train.x[r * static_cast<std::size_t>(T) + static_cast<std::size_t>(j)];
    yb[b] = train.y[r];
  }
}

// Names profile_steps' timing slots, in the order it laps them, with the time per step of each.
StepProfile label_profile(const std::vector<double>& acc, int64_t steps, int64_t non_finite_steps, const Config& cfg,
                          const std::vector<std::unique_ptr<Layer>>& layers, bool by_layer) {
  const std::size_t L = layers.size();
  StepProfile prof;
  prof.non_finite_steps = non_finite_steps;
  std::size_t k = 0;
  auto add = [&](std::string what, std::string kind) {
    prof.entries.push_back({std::move(what), std::move(kind), acc[k++] / static_cast<double>(steps)});
    prof.total_ns += prof.entries.back().ns_per_step;
  };
  add("minibatch gather (randint + rows)", "gather");
  add("embedding forward (rows of C, flattened)", "gather");
  for (std::size_t i = 0; i < L; ++i) add(fmt::format("layers.{} {} forward", i, layers[i]->describe()), kind_of(*layers[i]));
  add("softmax + cross-entropy forward", "softmax");
  add("finiteness check of every activation", "other");
  add("softmax + cross-entropy backward", "softmax");
  for (std::size_t i = L; i-- > 0;) add(fmt::format("layers.{} {} backward", i, layers[i]->describe()), kind_of(*layers[i]));
  add("embedding backward (scatter-add)", "gather");
  add(fmt::format("{} update{}", cfg.optimizer.name(),
                  by_layer                 ? " (layer by layer, inside the backward)"
                  : cfg.clip_grad_norm > 0 ? " (+ clipping)"
                                           : ""),
      "optimizer");
  return prof;
}

}  // namespace

StepProfile profile_steps(Model& model, const Config& cfg, const Examples& train, int64_t steps) {
  const int batch = cfg.batch_size;
  const uint64_t seed = cfg.seed;
  Optimizer opt(cfg.optimizer, model.params().values().size());
  TorchGenerator gen(seed);
  auto& layers = model.stack().layers();
  const std::size_t L = layers.size();
  // slots: 0 gather, 1 embedding fwd, 2..2+L layer fwd, loss, finiteness check, loss bwd,
  // layer bwd (L), embedding bwd, update
  const std::size_t n_slots = 2 * L + 7;
  std::vector<double> acc(n_slots, 0.0);
  const bool by_layer = can_update_inside_backward(cfg, model);
  std::vector<int64_t> ix(static_cast<std::size_t>(batch));
  std::vector<int32_t> yb(static_cast<std::size_t>(batch));
  const int T = model.block_size();
  std::vector<int32_t> tokens(static_cast<std::size_t>(batch) * static_cast<std::size_t>(T));
  Mat dlogits, dflat;
  std::vector<Mat> grads(L);
  SoftmaxCrossEntropy ce;
  const int64_t warm = std::min<int64_t>(steps, 200);
  int64_t non_finite_steps = 0;
  for (int64_t s = 0; s < warm + steps; ++s) {
    const bool timed = s >= warm;
    std::size_t k = 0;
    double t = thread_ns();
    auto lap = [&] {
      const double now = thread_ns();
      if (timed) acc[k] += now - t;
      ++k;
      t = now;
    };
    gather_minibatch(gen, train, T, ix, tokens, yb);
    lap();
    model.embedding().forward_tokens(tokens.data(), batch, T);
    lap();
    const Mat* in = &model.embedding().out();
    for (auto& l : layers) {
      l->forward(*in, ForwardContext(Mode::Train, &gen));
      in = &l->out();
      lap();
    }
    ce.forward(*in, yb.data());
    lap();
    non_finite_steps += model.outputs_finite() ? 0 : 1;  // the trainer's check of every activation
    lap();
    ce.backward(&dlogits);
    lap();
    const bool token_path = model.first_linear_took_tokens();  // layers[0] writes dC itself
    // As Trainer::step: each layer's update right after its backward where it can (timed into
    // the update's slot), else one update after the whole backward.
    auto update_range = [&](std::size_t owner) {
      const auto [k0, k1] = model.update_ranges()[owner];
      if (k0 < k1) opt.update(model.params().values().data(), model.params().grads().data(), cfg.lr_at(s), k0, k1);
      const double now = thread_ns();
      if (timed) acc[n_slots - 1] += now - t;
      t = now;
    };
    for (std::size_t i = L; i-- > 0;) {
      layers[i]->backward(i + 1 == L ? dlogits : grads[i], i > 0 ? &grads[i - 1] : (token_path ? nullptr : &dflat));
      lap();
      if (by_layer) update_range(i + 1);
    }
    if (!token_path) model.embedding().backward(dflat, nullptr);
    lap();
    if (by_layer) {
      update_range(0);
      opt.advance();
    } else {
      if (cfg.clip_grad_norm > 0) clip_grad_norm(model.params().grads(), cfg.clip_grad_norm);
      opt.step(model.params().values(), model.params().grads(), cfg.lr_at(s));
    }
    lap();
  }
  return label_profile(acc, steps, non_finite_steps, cfg, layers, by_layer);
}

}  // namespace mm
