// FLOP accounting, the FMA peak micro-benchmark, and which processor it ran on.
#include "makemore/perf.h"

#include <sys/resource.h>

#include <chrono>
#include <fstream>

#if defined(__AVX512F__) || defined(__FMA__)
#include <immintrin.h>
#endif
#include <fmt/format.h>

#include <cmath>

#include "makemore/layer_kinds.h"
#include "makemore/optim.h"
#include "makemore/rng.h"

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

const char* fma_vector_isa() {
#if defined(__AVX512F__)
  return "avx512 (16 floats)";
#elif defined(__FMA__)
  return "avx2+fma (8 floats)";
#else
  return "4-float vectors, multiply + add";
#endif
}

double measure_fma_peak_gflops(double seconds) {
  using clock = std::chrono::steady_clock;
  constexpr int kChains = 12;  // enough independent chains to cover FMA latency x 2 ports
  const long iters = 1 << 16;
  double best = 0;
  const auto t_end = clock::now() + std::chrono::duration<double>(seconds);
  volatile float sink = 0;
  do {
#if defined(__AVX512F__)
    __m512 acc[kChains];
    for (int c = 0; c < kChains; ++c) acc[c] = _mm512_set1_ps(static_cast<float>(c) * 1e-3f);
    const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
    const auto t0 = clock::now();
    for (long i = 0; i < iters; ++i)
      for (int c = 0; c < kChains; ++c) acc[c] = _mm512_fmadd_ps(acc[c], a, b);
    const double dt = std::chrono::duration<double>(clock::now() - t0).count();
    float s = 0;
    for (int c = 0; c < kChains; ++c) s += _mm512_reduce_add_ps(acc[c]);
    sink = s;
    const double flops = 2.0 * 16 * kChains * static_cast<double>(iters);
#elif defined(__FMA__)
    __m256 acc[kChains];
    for (int c = 0; c < kChains; ++c) acc[c] = _mm256_set1_ps(static_cast<float>(c) * 1e-3f);
    const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
    const auto t0 = clock::now();
    for (long i = 0; i < iters; ++i)
      for (int c = 0; c < kChains; ++c) acc[c] = _mm256_fmadd_ps(acc[c], a, b);
    const double dt = std::chrono::duration<double>(clock::now() - t0).count();
    alignas(32) float tmp[8];
    float s = 0;
    for (int c = 0; c < kChains; ++c) {
      _mm256_store_ps(tmp, acc[c]);
      for (float v : tmp) s += v;
    }
    sink = s;
    const double flops = 2.0 * 8 * kChains * static_cast<double>(iters);
#else
    // Without FMA instructions (a portable x86-64 or other build) the yardstick is what the
    // portable kernels can use: 4-float vectors (SSE2 / NEON), a multiply and an add (std::fma
    // would be a slow library call here, not the machine's speed).
    typedef float v4 __attribute__((vector_size(16)));
    v4 acc[kChains];
    for (int c = 0; c < kChains; ++c) acc[c] = v4{1, 1, 1, 1} * (static_cast<float>(c) * 1e-3f);
    const v4 a = {0.999999f, 0.999999f, 0.999999f, 0.999999f}, b = {1e-7f, 1e-7f, 1e-7f, 1e-7f};
    const auto t0 = clock::now();
    for (long i = 0; i < iters; ++i)
      for (int c = 0; c < kChains; ++c) acc[c] = acc[c] * a + b;
    const double dt = std::chrono::duration<double>(clock::now() - t0).count();
    float s = 0;
    for (int c = 0; c < kChains; ++c)
      for (int k = 0; k < 4; ++k) s += acc[c][k];
    sink = s;
    const double flops = 2.0 * 4 * kChains * static_cast<double>(iters);
#endif
    if (dt > 0) best = std::max(best, flops / dt / 1e9);
  } while (clock::now() < t_end);
  (void)sink;
  return best;
}

}  // namespace mm

namespace mm {

namespace {
// steady_clock reads the vDSO (~20 ns); the thread CPU clock is a system call here (~1.3 us).
double thread_ns() {
  return std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::string kind_of(const Layer& l) { return role_name(l.kind().traits.role); }
}  // namespace

StepProfile profile_steps(Model& model, const Config& cfg, const Examples& train, int64_t steps) {
  const int batch = cfg.batch_size;
  const uint64_t seed = cfg.seed;
  Optimizer opt(cfg.optimizer, model.params().values().size());
  TorchGenerator gen(seed);
  auto& layers = model.stack().layers();
  const std::size_t L = layers.size();
  // slots: 0 gather, 1 embedding fwd, 2..2+L layer fwd, loss, loss bwd, layer bwd (L),
  // embedding bwd, update
  const std::size_t n_slots = 2 * L + 6;
  std::vector<double> acc(n_slots, 0.0);
  std::vector<int64_t> ix(static_cast<std::size_t>(batch));
  std::vector<int32_t> yb(static_cast<std::size_t>(batch));
  const int T = model.block_size();
  std::vector<int32_t> tokens(static_cast<std::size_t>(batch) * static_cast<std::size_t>(T));
  Mat dlogits, dflat;
  std::vector<Mat> grads(L);
  SoftmaxCrossEntropy ce;
  const int64_t warm = std::min<int64_t>(steps, 200);
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
    gen.randint(0, static_cast<int64_t>(train.size()), ix.data(), ix.size());
    for (int b = 0; b < batch; ++b) {
      const std::size_t r = static_cast<std::size_t>(ix[static_cast<std::size_t>(b)]);
      for (int j = 0; j < T; ++j)
        tokens[static_cast<std::size_t>(b * T + j)] = train.x[r * static_cast<std::size_t>(T) + static_cast<std::size_t>(j)];
      yb[static_cast<std::size_t>(b)] = train.y[r];
    }
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
    ce.backward(&dlogits);
    lap();
    const bool token_path = model.first_linear_took_tokens();  // layers[0] writes dC itself
    for (std::size_t i = L; i-- > 0;) {
      layers[i]->backward(i + 1 == L ? dlogits : grads[i], i > 0 ? &grads[i - 1] : (token_path ? nullptr : &dflat));
      lap();
    }
    if (!token_path) model.embedding().backward(dflat, nullptr);
    lap();
    if (cfg.clip_grad_norm > 0) clip_grad_norm(model.params().grads(), cfg.clip_grad_norm);
    opt.step(model.params().values(), model.params().grads(), cfg.lr_at(s));
    lap();
  }
  StepProfile prof;
  std::size_t k = 0;
  auto add = [&](std::string what, std::string kind) {
    prof.entries.push_back({std::move(what), std::move(kind), acc[k++] / static_cast<double>(steps)});
    prof.total_ns += prof.entries.back().ns_per_step;
  };
  add("minibatch gather (randint + rows)", "gather");
  add("embedding forward (rows of C, flattened)", "gather");
  for (std::size_t i = 0; i < L; ++i) add(fmt::format("layers.{} {} forward", i, layers[i]->describe()), kind_of(*layers[i]));
  add("softmax + cross-entropy forward", "softmax");
  add("softmax + cross-entropy backward", "softmax");
  for (std::size_t i = L; i-- > 0;) add(fmt::format("layers.{} {} backward", i, layers[i]->describe()), kind_of(*layers[i]));
  add("embedding backward (scatter-add)", "gather");
  add(fmt::format("{} update{}", cfg.optimizer.type, cfg.clip_grad_norm > 0 ? " (+ clipping)" : ""), "optimizer");
  return prof;
}

}  // namespace mm
