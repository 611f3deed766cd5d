// gemm(): Eigen for every case, libxsmm where it was built in. libxsmm is column-major: a
// row-major C = op(A) op(B) is the column-major C^T = op(B)^T op(A)^T, so the operands swap
// instead of the data moving. Its JIT kernels support a transposed second operand only, so a
// transposed B (dx = dout W^T) is first transposed into scratch (a few microseconds less than
// Eigen's packing at the lecture's sizes) — or, when B is much larger than A and C (a wide
// weight), A and C are transposed instead.
#include "makemore/gemm.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <vector>

#include "kernels/kernels.h"
#include "makemore/error.h"
#include "makemore/parallel.h"

#ifdef MAKEMORE_WITH_XSMM
#include <libxsmm.h>
#endif

namespace mm {

namespace {

// Eigen's products, compiled for the kernel set in use (kernels/kernels.cpp).
void gemm_eigen(Op opa, Op opb, int M, int N, int K, const float* A, int lda, const float* B, int ldb, float* C, int ldc,
                bool accumulate) {
  kernels::kernels().gemm_eigen(opa == Op::T, opb == Op::T, M, N, K, A, lda, B, ldb, C, ldc, accumulate);
}

#ifdef MAKEMORE_WITH_XSMM
struct KernelKey {
  int m, n, k, lda, ldb, ldc, flags;
  bool operator==(const KernelKey&) const = default;
};
struct Kernel {
  KernelKey key;
  libxsmm_smmfunction fn;
};

libxsmm_smmfunction dispatch(const KernelKey& key) {
  thread_local std::vector<Kernel> cache;  // a handful of shapes per network
  for (const auto& k : cache)
    if (k.key == key) return k.fn;
  const float alpha = 1.0f, beta = (key.flags & 0x100) ? 1.0f : 0.0f;
  const int flags = key.flags & 0xff;
  libxsmm_smmfunction fn = libxsmm_smmdispatch(key.m, key.n, key.k, &key.lda, &key.ldb, &key.ldc, &alpha, &beta, &flags, nullptr);
  cache.push_back({key, fn});
  return fn;
}

// out (cols x rows, ldo) = in (rows x cols, ldi) transposed, row-major: the kernel set's 16 x 16
// register blocks, or libxsmm's (column-major terms: in is cols x rows) where the set has none.
void transpose(const float* in, int rows, int cols, int ldi, float* out, int ldo) {
  if (const auto t = kernels::kernels().transpose) return t(in, rows, cols, ldi, out, ldo);
  libxsmm_otrans(out, in, sizeof(float), cols, rows, ldi, ldo);
}

// ---- A B with B larger than the L2 ----------------------------------------------------------
// x W with W a wide weight (big-mlp's 1000 x 1000, 4 MB): libxsmm's kernel walks W in strips a
// few vectors wide down all K rows, each row 4 KB after the last, and waits on memory (about 62-73%
// of the peak in makemore_gemm_bench, less in a training step, where W is not in the L3). In
// panels of kPanel columns of C and chunks of kChunk rows of W instead, each chunk (16 KB) comes
// from memory once and serves every row of x from the L1. The chunks continue each output's
// fused multiply-add chain (beta = 1 after the first), so where libxsmm computes one chain per
// output in k's order for both shapes the result is the single call's to the bit; that is
// checked once per shape on random data (panels_exact), and a shape that fails it keeps the
// single call.
constexpr int kPanel = 64, kChunk = 64;
constexpr double kPanelMinB = 1 << 18;  // B's floats (1 MB): an L2's worth

// false (C partly written) where libxsmm has no kernel for a chunk's shape.
bool panels(int M, int N, int K, const float* A, int lda, const float* B, int ldb, float* C, int ldc, bool accumulate) {
  for (int n0 = 0; n0 < N; n0 += kPanel) {
    const int w = std::min(kPanel, N - n0);
    for (int k0 = 0; k0 < K; k0 += kChunk) {
      const int kc = std::min(kChunk, K - k0);
      const int flags = (accumulate || k0 > 0) ? 0x100 : 0;
      libxsmm_smmfunction fn = dispatch(KernelKey{w, M, kc, ldb, lda, ldc, flags});
      if (!fn) return false;
      fn(B + static_cast<std::ptrdiff_t>(k0) * ldb + n0, A + k0, C + n0);
    }
  }
  return true;
}

// The vectors in turn filled from one linear congruential stream, uniform in [-1, 1): the
// random data on which a way of splitting a product is checked against the single call.
void fill_random(uint32_t seed, std::initializer_list<std::vector<float>*> vectors) {
  uint32_t state = seed;
  for (auto* v : vectors)
    for (float& e : *v) {
      state = state * 1664525u + 1013904223u;
      e = static_cast<float>(static_cast<int32_t>(state >> 8) - (1 << 23)) / static_cast<float>(1 << 23);
    }
}

bool panels_exact(libxsmm_smmfunction whole, int M, int N, int K, int lda, int ldb, int ldc, bool accumulate) {
  std::vector<float> A(static_cast<std::size_t>(M) * static_cast<std::size_t>(lda)),
      B(static_cast<std::size_t>(K) * static_cast<std::size_t>(ldb)),
      C1(static_cast<std::size_t>(M) * static_cast<std::size_t>(ldc));
  fill_random(12345, {&A, &B, &C1});
  std::vector<float> C2 = C1;
  whole(B.data(), A.data(), C1.data());
  return panels(M, N, K, A.data(), lda, B.data(), ldb, C2.data(), ldc, accumulate) &&
         std::memcmp(C1.data(), C2.data(), C1.size() * sizeof(float)) == 0;
}

// Whether panels() gives `whole`'s bits for this shape: checked once per shape and thread.
bool panels_verified(libxsmm_smmfunction whole, int M, int N, int K, int lda, int ldb, int ldc, bool accumulate) {
  struct Verdict {
    KernelKey key;
    bool exact;
  };
  thread_local std::vector<Verdict> verdicts;
  const KernelKey key{N, M, K, ldb, lda, ldc, accumulate ? 0x100 : 0};
  auto it = std::find_if(verdicts.begin(), verdicts.end(), [&](const Verdict& v) { return v.key == key; });
  if (it == verdicts.end()) it = verdicts.insert(verdicts.end(), {key, panels_exact(whole, M, N, K, lda, ldb, ldc, accumulate)});
  return it->exact;
}

bool wide_weight(int N, int K) { return static_cast<double>(K) * N >= kPanelMinB && K > kChunk; }

// One NN product, in panels where B is large and that gives the same bits.
void product_nn(libxsmm_smmfunction whole, int M, int N, int K, const float* A, int lda, const float* B, int ldb, float* C,
                int ldc, bool accumulate) {
  if (wide_weight(N, K) && panels_verified(whole, M, N, K, lda, ldb, ldc, accumulate) &&
      panels(M, N, K, A, lda, B, ldb, C, ldc, accumulate))
    return;
  whole(B, A, C);
}

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// ---- x W over threads, each with its own rows of W -----------------------------------------
// Split by C's columns, every thread would read every row of W, while the backward (dW by rows,
// dx by W's rows) and the update (by rows) give each thread its own rows; W's lines would then
// move between the cores every step, and a core reads data the other core just wrote at less
// than half the speed of its own. Here thread i takes its own whole chunks of panels()'s rows
// of W, and for each panel continues the fused multiply-add chains thread i - 1 left there (a
// pipeline, one panel behind): every output gets panels()'s calls in panels()'s order, so the
// bits of one thread. False (nothing written) where this does not apply.
bool pipelined_nn(int t, int M, int N, int K, const float* A, int lda, const float* B, int ldb, float* C, int ldc) {
  if (gemm_backend() != GemmBackend::Xsmm || !wide_weight(N, K) || K < kChunk * t) return false;
  libxsmm_smmfunction whole = dispatch(KernelKey{N, M, K, ldb, lda, ldc, 0});
  if (!whole || !panels_verified(whole, M, N, K, lda, ldb, ldc, false)) return false;
  const int chunks = (K + kChunk - 1) / kChunk, per = (chunks + t - 1) / t, n_panels = (N + kPanel - 1) / kPanel;
  std::vector<std::atomic<int>> done(static_cast<std::size_t>(t));  // panels each thread has finished
  std::atomic<bool> failed{false};
  auto stage = [&](int thread) {
    const int i = block_of(thread, t), c0 = std::min(chunks, i * per), c1 = std::min(chunks, c0 + per);
    for (int p = 0; p < n_panels; ++p) {
      if (i > 0)
        while (done[static_cast<std::size_t>(i - 1)].load(std::memory_order_acquire) <= p) {
          if (failed.load(std::memory_order_relaxed)) return;
          cpu_relax();
        }
      const int n0 = p * kPanel, w = std::min(kPanel, N - n0);
      for (int c = c0; c < c1; ++c) {
        const int k0 = c * kChunk;
        libxsmm_smmfunction fn = dispatch(KernelKey{w, M, std::min(kChunk, K - k0), ldb, lda, ldc, k0 > 0 ? 0x100 : 0});
        if (!fn) return failed.store(true);
        fn(B + static_cast<std::ptrdiff_t>(k0) * ldb + n0, A + k0, C + n0);
      }
      done[static_cast<std::size_t>(i)].store(p + 1, std::memory_order_release);
    }
  };
  if (!try_parallel_run(t, stage)) return false;
  if (failed.load()) whole(B, A, C);  // a kernel panels_verified() dispatched, missing on a worker
  return true;
}

// Whether A (M x K) B^T with B stored N x K transposes its two thin operands rather than B: when
// they are smaller together than B.
bool thin_operands(int M, int N, int K) {
  return static_cast<double>(M) * (static_cast<double>(K) + N) < static_cast<double>(N) * K;
}

bool gemm_xsmm(Op opa, Op opb, int M, int N, int K, const float* A, int lda, const float* B, int ldb, float* C, int ldc,
               bool accumulate) {
  thread_local std::vector<float> scratch, scratch_c;
  if (opa == Op::N && opb == Op::T && thin_operands(M, N, K)) {
    // When the two thin operands together are smaller than W (dx = dout W^T for the deep
    // net's 100 x 100 weights: 3.5 instead of 4.2 us; 1000 x 1000: 305 instead of 531 us),
    // transpose them instead of W: C as a column-major M x N = A (a column-major M x K copy)
    // times B^T, and B^T as a column-major K x N is exactly B's row-major storage. (Measured
    // by product shape: for the lecture's 32 x 200 x 27 and 32 x 30 x 200 it is a wash.)
    scratch.resize(static_cast<std::size_t>(M) * static_cast<std::size_t>(K));
    scratch_c.resize(static_cast<std::size_t>(M) * static_cast<std::size_t>(N));
    transpose(A, M, K, lda, scratch.data(), M);
    const KernelKey key{M, N, K, M, ldb, M, 0};
    libxsmm_smmfunction fn = dispatch(key);
    if (!fn) return false;
    fn(scratch.data(), B, scratch_c.data());
    if (!accumulate) {
      transpose(scratch_c.data(), N, M, M, C, ldc);
    } else {
      for (int i = 0; i < M; ++i)
        for (int j = 0; j < N; ++j)
          C[static_cast<std::size_t>(i) * static_cast<std::size_t>(ldc) + static_cast<std::size_t>(j)] +=
              scratch_c[static_cast<std::size_t>(j) * static_cast<std::size_t>(M) + static_cast<std::size_t>(i)];
    }
    return true;
  }
  if (opb == Op::T) {
    // B is stored (N x K); make it (K x N).
    scratch.resize(static_cast<std::size_t>(K) * static_cast<std::size_t>(N));
    transpose(B, N, K, ldb, scratch.data(), N);
    B = scratch.data();
    ldb = N;
    opb = Op::N;
  }
  // Column-major: C^T (N x M) = B^T (N x K) * op(A)^T (K x M); op(A) = A^T means a transposed
  // second operand for libxsmm.
  const int flags = (opa == Op::T ? LIBXSMM_GEMM_FLAG_TRANS_B : 0) | (accumulate ? 0x100 : 0);
  const KernelKey key{N, M, K, ldb, lda, ldc, flags};
  libxsmm_smmfunction fn = dispatch(key);
  if (!fn) return false;
  if (opa == Op::N)
    product_nn(fn, M, N, K, A, lda, B, ldb, C, ldc, accumulate);
  else
    fn(B, A, C);
  return true;
}

// ---- A Linear's backward in blocks of W's rows (gemm_linear_backward_rows) ------------------
constexpr int kRowBlock = 64;  // rows of W and dW per block: 2 x 64 x Out floats, 512 KB at Out = 1000

// The end of the block that starts at row r0 of a thread's rows [.., r_end): kRowBlock rows, the
// last block taking the remainder (up to 2 kRowBlock - 1 rows, so that no block is thin enough
// for gemm() to compute dx another way).
int row_block_end(int r0, int r_end) { return r_end - r0 < 2 * kRowBlock ? r_end : r0 + kRowBlock; }

// The libxsmm kernels of one block of b rows: dW's rows (gemm_xsmm's x^T dout) and dx's columns
// (its dout W^T with the thin operands transposed), the very kernels gemm() calls for them.
struct RowBlockKernels {
  int rows;
  libxsmm_smmfunction dw, dx;
};

// One shape's blocks: t threads (gemm()'s split of both products by W's rows, where it splits)
// of `per` rows each, and the kernels of every block size, dispatched by the calling thread.
struct RowBlockPlan {
  int M, In, Out, t, per;
  bool with_dx;
  std::vector<RowBlockKernels> kernels;

  const RowBlockKernels* find(int b) const {
    for (const auto& k : kernels)
      if (k.rows == b) return &k;
    return nullptr;
  }
  std::pair<int, int> thread_rows(int thread) const {
    const int r_begin = std::min(In, block_of(thread, t) * per);
    return {r_begin, std::min(In, r_begin + per)};
  }
};

// False where gemm() would compute a block's outputs another way (dx with W transposed) or
// libxsmm has no kernel.
bool plan_row_blocks(RowBlockPlan& p) {
  p.t = 1;
  if (threads() > 1 && static_cast<double>(p.M) * p.In * p.Out >= kParallelMinMacs && p.In >= 32 * threads()) p.t = threads();
  p.per = p.t > 1 ? static_cast<int>(rows_per_thread(static_cast<std::size_t>(p.In), p.t)) : p.In;
  for (int i = 0; i < p.t; ++i) {
    const auto [r_begin, r_end] = p.thread_rows(i);
    if (p.with_dx && r_end > r_begin && !thin_operands(p.M, r_end - r_begin, p.Out)) return false;
    for (int r0 = r_begin, r1 = 0; r0 < r_end; r0 = r1) {
      r1 = row_block_end(r0, r_end);
      const int b = r1 - r0;
      if (p.with_dx && !thin_operands(p.M, b, p.Out)) return false;
      if (p.find(b)) continue;
      const RowBlockKernels k{b, dispatch(KernelKey{p.Out, b, p.M, p.Out, p.In, p.Out, LIBXSMM_GEMM_FLAG_TRANS_B}),
                              p.with_dx ? dispatch(KernelKey{p.M, b, p.Out, p.M, p.Out, p.M, 0}) : nullptr};
      if (!k.dw || (p.with_dx && !k.dx)) return false;
      p.kernels.push_back(k);
    }
  }
  return true;
}

// Thread `thread`'s rows of the plan: each block's rows of dW, its columns of dx, rows_done.
void run_row_blocks(const RowBlockPlan& p, int thread, const float* x, const float* dout, const float* W, float* dW, float* dx,
                    const RowsDone& rows_done) {
  const auto [r_begin, r_end] = p.thread_rows(thread);
  if (r_end <= r_begin) return;
  const int M = p.M, Out = p.Out;
  thread_local std::vector<float> dout_t, dx_t;  // dout and this thread's columns of dx, transposed
  if (dx) {
    dout_t.resize(static_cast<std::size_t>(M) * static_cast<std::size_t>(Out));
    dx_t.resize(static_cast<std::size_t>(M) * static_cast<std::size_t>(r_end - r_begin));
    transpose(dout, M, Out, Out, dout_t.data(), M);
  }
  for (int r0 = r_begin, r1 = 0; r0 < r_end; r0 = r1) {
    r1 = row_block_end(r0, r_end);
    const RowBlockKernels* k = p.find(r1 - r0);
    const std::ptrdiff_t w0 = static_cast<std::ptrdiff_t>(r0) * Out;
    k->dw(dout, x + r0, dW + w0);
    if (dx) k->dx(dout_t.data(), W + w0, dx_t.data() + static_cast<std::ptrdiff_t>(r0 - r_begin) * M);
    if (rows_done) rows_done(r0, r1);
  }
  if (dx) transpose(dx_t.data(), r_end - r_begin, M, M, dx + r_begin, p.In);
}

// Whether the plan's blocks give gemm()'s bits for this shape: libxsmm's kernel of a block's rows
// sums some shapes in another order than its kernel of all of them (dW's rows for 1037 x 517 at
// a batch of 32). Checked once per shape and thread count on random data, as panels_verified.
bool row_blocks_verified(const RowBlockPlan& p) {
  struct Verdict {
    int M, In, Out, t;
    bool with_dx, exact;
  };
  thread_local std::vector<Verdict> verdicts;
  for (const auto& v : verdicts)
    if (v.M == p.M && v.In == p.In && v.Out == p.Out && v.t == p.t && v.with_dx == p.with_dx) return v.exact;
  const auto n = [](int a, int b) { return static_cast<std::size_t>(a) * static_cast<std::size_t>(b); };
  std::vector<float> x(n(p.M, p.In)), dout(n(p.M, p.Out)), W(n(p.In, p.Out)), dW1(W.size()), dW2(W.size()), dx1(x.size()),
      dx2(x.size());
  fill_random(2024, {&x, &dout, &W});
  gemm(Op::T, Op::N, p.In, p.Out, p.M, x.data(), p.In, dout.data(), p.Out, dW1.data(), p.Out);
  if (p.with_dx) gemm(Op::N, Op::T, p.M, p.In, p.Out, dout.data(), p.Out, W.data(), p.Out, dx1.data(), p.In);
  for (int i = 0; i < p.t; ++i)
    run_row_blocks(p, i, x.data(), dout.data(), W.data(), dW2.data(), p.with_dx ? dx2.data() : nullptr, {});
  const bool exact = std::memcmp(dW1.data(), dW2.data(), dW1.size() * sizeof(float)) == 0 &&
                     std::memcmp(dx1.data(), dx2.data(), dx1.size() * sizeof(float)) == 0;
  verdicts.push_back({p.M, p.In, p.Out, p.t, p.with_dx, exact});
  return exact;
}

bool linear_backward_rows_xsmm(int M, int In, int Out, const float* x, const float* dout, const float* W, float* dW, float* dx,
                               const RowsDone& rows_done) {
  if (gemm_backend() != GemmBackend::Xsmm || !wide_weight(Out, In)) return false;
  RowBlockPlan plan{M, In, Out, 1, In, dx != nullptr, {}};
  if (!plan_row_blocks(plan) || !row_blocks_verified(plan)) return false;
  auto stage = [&](int thread) { run_row_blocks(plan, thread, x, dout, W, dW, dx, rows_done); };
  if (!try_parallel_run(plan.t, stage))
    for (int i = 0; i < plan.t; ++i) stage(i);
  return true;
}

bool xsmm_works() {
  static const bool ok = [] {
    libxsmm_init();
    const float alpha = 1, beta = 0;
    const int flags = 0, m = 8, n = 8, k = 8;
    return libxsmm_smmdispatch(m, n, k, nullptr, nullptr, nullptr, &alpha, &beta, &flags, nullptr) != nullptr;
  }();
  return ok;
}
#endif

GemmBackend initial_backend() {
  const char* env = std::getenv("MAKEMORE_GEMM");
  if (env && std::strcmp(env, "eigen") == 0) return GemmBackend::Eigen;
  if (env && std::strcmp(env, "xsmm") == 0 && !gemm_backend_available(GemmBackend::Xsmm))
    throw Error("MAKEMORE_GEMM=xsmm: this build has no libxsmm (or the CPU is not supported); unset it or use eigen");
  if (env && *env && std::strcmp(env, "xsmm") != 0)
    throw Error(fmt::format("MAKEMORE_GEMM={}: unknown value; use eigen or xsmm (or unset it)", env));
  return gemm_backend_available(GemmBackend::Xsmm) ? GemmBackend::Xsmm : GemmBackend::Eigen;
}

std::atomic<GemmBackend>& backend_ref() {
  static std::atomic<GemmBackend> b{initial_backend()};
  return b;
}

}  // namespace

bool gemm_backend_available(GemmBackend b) {
  if (b == GemmBackend::Eigen) return true;
#ifdef MAKEMORE_WITH_XSMM
  return xsmm_works();
#else
  return false;
#endif
}

void set_gemm_backend(GemmBackend b) {
  if (!gemm_backend_available(b))
    throw Error(fmt::format("the {} matrix backend is not available in this build or on this CPU", gemm_backend_name(b)));
  backend_ref() = b;
}

GemmBackend gemm_backend() { return backend_ref().load(std::memory_order_relaxed); }

const char* gemm_backend_name(GemmBackend b) { return b == GemmBackend::Eigen ? "eigen" : "libxsmm"; }

namespace {
void gemm_one(Op opa, Op opb, int M, int N, int K, const float* A, int lda, const float* B, int ldb, float* C, int ldc,
              bool accumulate) {
#ifdef MAKEMORE_WITH_XSMM
  if (gemm_backend() == GemmBackend::Xsmm && gemm_xsmm(opa, opb, M, N, K, A, lda, B, ldb, C, ldc, accumulate)) return;
#endif
  gemm_eigen(opa, opb, M, N, K, A, lda, B, ldb, C, ldc, accumulate);
}

// op(A)^T dout-like products (a weight's gradient, x^T dout) split C's rows, which are W's rows:
// each thread then writes the rows of dW that it updates (Optimizer::update) and, for a wide W,
// reads in x W (pipelined_nn) and dout W^T (split_columns: dx's columns are W's rows).
bool split_rows(int t, Op opa, Op opb, int M, int N, int K, const float* A, int lda, const float* B, int ldb, float* C, int ldc,
                bool accumulate) {
  const int per = static_cast<int>(rows_per_thread(static_cast<std::size_t>(M), t));
  return try_parallel_run(t, [&](int thread) {
    const int m0 = std::min(M, block_of(thread, t) * per), m1 = std::min(M, m0 + per);
    if (m1 > m0)
      gemm_one(opa, opb, m1 - m0, N, K, A + m0, lda, B, ldb, C + static_cast<std::ptrdiff_t>(m0) * ldc, ldc, accumulate);
  });
}

// C's columns in blocks, one per thread: op(B)'s matching columns are B + n0 (stored K x N) or
// B + n0 * ldb (stored N x K). Each element is computed by the same kernel arithmetic as in one
// piece, only the block shapes differ.
bool split_columns(int t, Op opa, Op opb, int M, int N, int K, const float* A, int lda, const float* B, int ldb, float* C,
                   int ldc, bool accumulate) {
  const int per = static_cast<int>(rows_per_thread(static_cast<std::size_t>(N), t));
  return try_parallel_run(t, [&](int thread) {
    const int n0 = std::min(N, block_of(thread, t) * per), n1 = std::min(N, n0 + per);
    if (n1 <= n0) return;
    const float* Bi = opb == Op::N ? B + n0 : B + static_cast<std::ptrdiff_t>(n0) * ldb;
    gemm_one(opa, opb, M, n1 - n0, K, A, lda, Bi, ldb, C + n0, ldc, accumulate);
  });
}
}  // namespace

bool gemm_linear_backward_rows(int M, int In, int Out, const float* x, const float* dout, const float* W, float* dW, float* dx,
                               const RowsDone& rows_done) {
#ifdef MAKEMORE_WITH_XSMM
  return linear_backward_rows_xsmm(M, In, Out, x, dout, W, dW, dx, rows_done);
#else
  return false;
#endif
}

void gemm(Op opa, Op opb, int M, int N, int K, const float* A, int lda, const float* B, int ldb, float* C, int ldc,
          bool accumulate) {
  const int t = threads();
  // A busy team (this product is inside a parallel evaluation) means one undivided product.
  if (t > 1 && static_cast<double>(M) * N * K >= kParallelMinMacs) {
    if (opa == Op::T && M >= 32 * t && split_rows(t, opa, opb, M, N, K, A, lda, B, ldb, C, ldc, accumulate)) return;
#ifdef MAKEMORE_WITH_XSMM
    if (opa == Op::N && opb == Op::N && !accumulate && pipelined_nn(t, M, N, K, A, lda, B, ldb, C, ldc)) return;
#endif
    if (N >= 32 * t && split_columns(t, opa, opb, M, N, K, A, lda, B, ldb, C, ldc, accumulate)) return;
  }
  gemm_one(opa, opb, M, N, K, A, lda, B, ldb, C, ldc, accumulate);
}

}  // namespace mm
