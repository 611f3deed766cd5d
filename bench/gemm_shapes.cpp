// build/makemore_gemm_bench: each matrix product of the lecture's training step timed alone
// (hot caches, best of 5 batches), through the same gemm() the layers call, against the
// single-core FMA peak measured on the spot. `bench --profile` times the products inside the
// step; this isolates them, e.g. to see what the transposed-operand products (dx = dout W^T)
// cost next to the plain ones. MAKEMORE_GEMM=eigen times the portable path. The last column says
// whether each output equals one fused multiply-add chain over k from zero, in k's order (the
// order a product kernel of our own would have to keep to give the same bits), or how many differ.
// The last lines time big-mlp's Linear(1000, 1000) backward with its SGD update, after the two
// products and in row blocks (gemm_linear_backward_rows), on one and two threads.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "makemore/gemm.h"
#include "makemore/parallel.h"
#include "makemore/perf.h"

namespace {

template <class F>
double best_ns(F f, int reps) {
  for (int i = 0; i < reps / 10; ++i) f();
  double best = 1e300;
  for (int r = 0; r < 5; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < reps; ++i) f();
    best = std::min(best, std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count() / reps);
  }
  return best;
}

// How many outputs of C (M x N, row-major) differ from std::fma(a_ik, b_kj, ...) added over
// k = 0, 1, ... from zero; A and B stored as gemm() takes them (ld = their stored columns).
int outputs_not_one_fma_chain(mm::Op a, mm::Op b, int M, int N, int K, const std::vector<float>& A, int lda,
                              const std::vector<float>& B, int ldb, const std::vector<float>& C) {
  auto at = [](const std::vector<float>& X, int ld, bool t, int r, int c) {
    return t ? X[static_cast<std::size_t>(c) * static_cast<std::size_t>(ld) + static_cast<std::size_t>(r)]
             : X[static_cast<std::size_t>(r) * static_cast<std::size_t>(ld) + static_cast<std::size_t>(c)];
  };
  int differ = 0;
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j) {
      float acc = 0.0f;
      for (int k = 0; k < K; ++k) acc = std::fma(at(A, lda, a == mm::Op::T, i, k), at(B, ldb, b == mm::Op::T, k, j), acc);
      differ += acc != C[static_cast<std::size_t>(i) * static_cast<std::size_t>(N) + static_cast<std::size_t>(j)] ? 1 : 0;
    }
  return differ;
}

struct Shape {
  const char* what;
  mm::Op a, b;
  int M, N, K;
};

// big-mlp's Linear(1000, 1000) backward with its SGD update, as the step runs it (the update
// inside the backward): the two products and then the update of all of W, against
// gemm_linear_backward_rows updating each block of 64 rows while it is in the L2. Three layers'
// weights and gradients (24 MB) taken in turn, as the step's backward does, so that W is not
// hot; times per layer, each way 6 times in turn, at threads() threads.
void big_backward_with_update() {
  const int M = 32, In = 1000, Out = 1000, layers = 3, t = mm::threads();
  const std::size_t n = static_cast<std::size_t>(In) * Out;
  std::mt19937 gen(2);
  std::normal_distribution<float> normal;
  std::vector<std::vector<float>> W(layers), dW(layers), x(layers), dout(layers), dx(layers);
  for (int l = 0; l < layers; ++l) {
    W[l].resize(n);
    dW[l].resize(n);
    x[l].resize(static_cast<std::size_t>(M) * In);
    dout[l].resize(static_cast<std::size_t>(M) * Out);
    dx[l].resize(x[l].size());
    for (auto* v : {&W[l], &x[l], &dout[l]})
      for (auto& e : *v) e = normal(gen);
  }
  auto sgd = [](float* p, const float* g, std::size_t a, std::size_t b) {
    for (std::size_t k = a; k < b; ++k) p[k] = p[k] + -1e-9f * g[k];
  };
  auto after = [&](int l) {
    mm::gemm(mm::Op::T, mm::Op::N, In, Out, M, x[l].data(), In, dout[l].data(), Out, dW[l].data(), Out);
    mm::gemm(mm::Op::N, mm::Op::T, M, In, Out, dout[l].data(), Out, W[l].data(), Out, dx[l].data(), In);
    const std::size_t per = mm::rows_per_thread(static_cast<std::size_t>(In), t) * Out;  // Optimizer::update's split
    mm::parallel_run(t, [&](int thread) {
      const std::size_t a = std::min(n, static_cast<std::size_t>(mm::block_of(thread, t)) * per), b = std::min(n, a + per);
      sgd(W[l].data(), dW[l].data(), a, b);
    });
  };
  bool blocks = true;
  auto inside = [&](int l) {
    blocks &= mm::gemm_linear_backward_rows(
        M, In, Out, x[l].data(), dout[l].data(), W[l].data(), dW[l].data(), dx[l].data(), [&](int r0, int r1) {
          sgd(W[l].data(), dW[l].data(), static_cast<std::size_t>(r0) * Out, static_cast<std::size_t>(r1) * Out);
        });
  };
  auto per_layer_us = [&](auto&& backward) {
    const int steps = 40;
    const auto t0 = std::chrono::steady_clock::now();
    for (int s = 0; s < steps; ++s)
      for (int l = layers; l-- > 0;) backward(l);
    return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() / (steps * layers);
  };
  std::vector<double> a, b;
  for (int r = 0; r < 6; ++r) {
    a.push_back(per_layer_us(after));
    b.push_back(per_layer_us(inside));
  }
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  fmt::print(
      "big Linear(1000, 1000) backward + SGD update, {} thread(s), us per layer (median of 6): update after the two "
      "products {:.0f}, in row blocks {}\n",
      t, (a[2] + a[3]) / 2,
      blocks ? fmt::format("{:.0f}", (b[2] + b[3]) / 2)
             : std::string("not available (another backend, or blocks that would not give the same bits)"));
}

}  // namespace

int main() {
  using mm::Op;
  // Batch 32; kaiming / batchnorm: (30 -> 200 -> 27); deep: 100 -> 100.
  const Shape shapes[] = {
      {"forward  x W1        (32x30)(30x200)", Op::N, Op::N, 32, 200, 30},
      {"forward  h W2        (32x200)(200x27)", Op::N, Op::N, 32, 27, 200},
      {"backward dW2 = h^T d (200x32)(32x27)", Op::T, Op::N, 200, 27, 32},
      {"backward dh = d W2^T (32x27)(27x200)", Op::N, Op::T, 32, 200, 27},
      {"backward dW1 = x^T d (30x32)(32x200)", Op::T, Op::N, 30, 200, 32},
      {"backward dx = d W1^T (32x200)(200x30)", Op::N, Op::T, 32, 30, 200},
      {"deep forward         (32x100)(100x100)", Op::N, Op::N, 32, 100, 100},
      {"deep dW = x^T d      (100x32)(32x100)", Op::T, Op::N, 100, 100, 32},
      {"deep dx = d W^T      (32x100)(100x100)", Op::N, Op::T, 32, 100, 100},
      // A depth-study cell (width 64): the products each hidden Linear runs every step.
      {"study forward        (32x64)(64x64)", Op::N, Op::N, 32, 64, 64},
      {"study dW = x^T d     (64x32)(32x64)", Op::T, Op::N, 64, 64, 32},
      {"study dx = d W^T     (32x64)(64x64)", Op::N, Op::T, 32, 64, 64},
      // big-mlp's hidden Linear(1000, 1000): its weight (4 MB) is past the L2.
      {"big forward          (32x1000)(1000x1000)", Op::N, Op::N, 32, 1000, 1000},
      {"big dW = x^T d       (1000x32)(32x1000)", Op::T, Op::N, 1000, 1000, 32},
      {"big dx = d W^T       (32x1000)(1000x1000)", Op::N, Op::T, 32, 1000, 1000},
  };
  const double peak = mm::measure_fma_peak_gflops();
  fmt::print("products via {}; measured FMA peak {:.0f} GFLOP/s ({})\n", mm::gemm_backend_name(mm::gemm_backend()), peak,
             mm::fma_vector_isa());
  fmt::print("{:<42} {:>9} {:>9} {:>7}  {}\n", "product (stored shapes)", "ns", "GFLOP/s", "% peak", "one FMA chain per output");
  std::mt19937 gen(1);
  std::normal_distribution<float> normal;
  double lecture_ns = 0;
  for (std::size_t s = 0; s < std::size(shapes); ++s) {
    const Shape& c = shapes[s];
    const int arows = c.a == Op::N ? c.M : c.K, acols = c.a == Op::N ? c.K : c.M;
    const int brows = c.b == Op::N ? c.K : c.N, bcols = c.b == Op::N ? c.N : c.K;
    std::vector<float> A(static_cast<std::size_t>(arows * acols)), B(static_cast<std::size_t>(brows * bcols)),
        C(static_cast<std::size_t>(c.M * c.N));
    for (auto& v : A) v = normal(gen);
    for (auto& v : B) v = normal(gen);
    // About 20,000 study-sized products' work per batch, at least 20 products.
    const int reps = std::max(20, static_cast<int>(20000.0 * 32 * 64 * 64 / (static_cast<double>(c.M) * c.N * c.K)));
    const double ns = best_ns([&] { mm::gemm(c.a, c.b, c.M, c.N, c.K, A.data(), acols, B.data(), bcols, C.data(), c.N); }, reps);
    const double gf = 2.0 * c.M * c.N * c.K / ns;
    if (s < 6) lecture_ns += ns;
    const int differ = outputs_not_one_fma_chain(c.a, c.b, c.M, c.N, c.K, A, acols, B, bcols, C);
    fmt::print("{:<42} {:>9.0f} {:>9.1f} {:>6.1f}%  {}\n", c.what, ns, gf, 100 * gf / peak,
               differ == 0 ? std::string("yes") : fmt::format("no: {} of {} outputs differ", differ, c.M * c.N));
  }
  fmt::print("the lecture step's six products alone: {:.0f} ns\n", lecture_ns);
  for (int t = 1; t <= std::min(2, static_cast<int>(std::thread::hardware_concurrency())); ++t) {
    mm::set_threads(t);
    big_backward_with_update();
  }
  return 0;
}
