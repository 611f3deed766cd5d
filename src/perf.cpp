// FLOP accounting and the FMA peak micro-benchmark.
#include "makemore/perf.h"

#include <chrono>

#if defined(__AVX512F__) || defined(__FMA__)
#include <immintrin.h>
#endif
#include <cmath>

namespace mm {

double step_matmul_flops(const Model& model, int batch) {
  double flops = 0;
  for (const Layer* l : model.all_layers()) {  // Linears inside residual blocks included
    if (l->type() != "Linear") continue;
    const double rows = static_cast<double>(batch) * (l->in_time() > 0 ? l->in_time() : 1);
    flops += 3.0 * 2.0 * rows * l->in_features() * l->out_features();
  }
  return flops;
}

const char* fma_vector_isa() {
#if defined(__AVX512F__)
  return "avx512 (16 floats)";
#elif defined(__FMA__)
  return "avx2+fma (8 floats)";
#else
  return "scalar fma";
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
    float acc[kChains];
    for (int c = 0; c < kChains; ++c) acc[c] = static_cast<float>(c) * 1e-3f;
    const auto t0 = clock::now();
    for (long i = 0; i < iters; ++i)
      for (int c = 0; c < kChains; ++c) acc[c] = std::fma(acc[c], 0.999999f, 1e-7f);
    const double dt = std::chrono::duration<double>(clock::now() - t0).count();
    float s = 0;
    for (float v : acc) s += v;
    sink = s;
    const double flops = 2.0 * kChains * static_cast<double>(iters);
#endif
    if (dt > 0) best = std::max(best, flops / dt / 1e9);
  } while (clock::now() < t_end);
  (void)sink;
  return best;
}

}  // namespace mm
