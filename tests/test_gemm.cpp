// The matrix-product backends: every transpose combination and the lecture's shapes, each
// backend against a double-precision reference, and a whole training step under both.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <mutex>
#include <random>
#include <vector>

#include "makemore/gemm.h"
#include "makemore/layers.h"
#include "makemore/model.h"
#include "makemore/optim.h"
#include "makemore/parallel.h"
#include "makemore/presets.h"
#include "makemore/train.h"

namespace {

using mm::GemmBackend;
using mm::Op;

struct BackendGuard {
  GemmBackend saved = mm::gemm_backend();
  ~BackendGuard() { mm::set_gemm_backend(saved); }
};

std::vector<GemmBackend> backends() {
  std::vector<GemmBackend> b{GemmBackend::Eigen};
  if (mm::gemm_backend_available(GemmBackend::Xsmm)) b.push_back(GemmBackend::Xsmm);
  return b;
}

void check(GemmBackend be, Op oa, Op ob, int M, int N, int K, bool acc) {
  std::mt19937 rng(static_cast<unsigned>(M * 131 + N * 7 + K));
  std::normal_distribution<float> nd;
  const int ar = oa == Op::N ? M : K, ac = oa == Op::N ? K : M;
  const int br = ob == Op::N ? K : N, bc = ob == Op::N ? N : K;
  std::vector<float> A(static_cast<std::size_t>(ar * ac)), B(static_cast<std::size_t>(br * bc)),
      C(static_cast<std::size_t>(M * N));
  for (auto& x : A) x = nd(rng);
  for (auto& x : B) x = nd(rng);
  for (auto& x : C) x = nd(rng);
  const std::vector<float> C0 = C;
  mm::set_gemm_backend(be);
  mm::gemm(oa, ob, M, N, K, A.data(), ac, B.data(), bc, C.data(), N, acc);
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j) {
      double s = acc ? C0[static_cast<std::size_t>(i * N + j)] : 0.0;
      for (int k = 0; k < K; ++k) {
        const double a = oa == Op::N ? A[static_cast<std::size_t>(i * ac + k)] : A[static_cast<std::size_t>(k * ac + i)];
        const double b = ob == Op::N ? B[static_cast<std::size_t>(k * bc + j)] : B[static_cast<std::size_t>(j * bc + k)];
        s += a * b;
      }
      ASSERT_NEAR(C[static_cast<std::size_t>(i * N + j)], s, 1e-4 * (1 + std::sqrt(static_cast<double>(K))))
          << mm::gemm_backend_name(be) << " op " << int(oa) << int(ob) << " M" << M << " N" << N << " K" << K << " at " << i
          << "," << j;
    }
}

TEST(Gemm, AllTransposesAndShapesBothBackends) {
  BackendGuard guard;
  const int shapes[][3] = {{32, 200, 30}, {30, 200, 32}, {32, 30, 200}, {32, 27, 200}, {200, 27, 32},
                           {32, 200, 27}, {1, 27, 200},  {7, 5, 3},     {33, 17, 65},  {32, 100, 100}};
  for (GemmBackend be : backends())
    for (const auto& s : shapes)
      for (Op oa : {Op::N, Op::T})
        for (Op ob : {Op::N, Op::T})
          for (bool acc : {false, true}) check(be, oa, ob, s[0], s[1], s[2], acc);
}

TEST(Gemm, BackendsAgreeOnATrainingRun) {
  if (!mm::gemm_backend_available(GemmBackend::Xsmm)) GTEST_SKIP() << "this build has no libxsmm backend";
  BackendGuard guard;
  mm::Examples ex;
  ex.block_size = 3;
  std::mt19937 rng(5);
  for (int i = 0; i < 500; ++i) {
    for (int t = 0; t < 3; ++t) ex.x.push_back(static_cast<int32_t>(rng() % 27));
    ex.y.push_back(static_cast<int32_t>(rng() % 27));
  }
  std::vector<std::vector<float>> params;
  for (GemmBackend be : {GemmBackend::Eigen, GemmBackend::Xsmm}) {
    mm::set_gemm_backend(be);
    mm::Config cfg = mm::load_preset("lecture-batchnorm");
    cfg.steps = 50;
    mm::Model model(cfg, 27);
    mm::TorchGenerator gen(cfg.seed);
    model.init(gen);
    mm::Trainer t(model, cfg, ex, gen);
    t.run();
    params.emplace_back(model.params().values().begin(), model.params().values().end());
  }
  ASSERT_EQ(params[0].size(), params[1].size());
  double worst = 0;
  for (std::size_t i = 0; i < params[0].size(); ++i)
    worst = std::max(worst, static_cast<double>(std::fabs(params[0][i] - params[1][i])));
  // Different summation orders only: last-bit differences, grown a little over 50 steps.
  EXPECT_LT(worst, 1e-4);
}

}  // namespace

namespace {
struct ThreadsGuard {
  int saved = mm::threads();
  ~ThreadsGuard() { mm::set_threads(saved); }
};
}  // namespace

// Products large enough to split (kParallelMinMacs) over two threads: against the double
// reference for every transpose case and both backends, and equal to the one-thread result.
// For 1000-wide outputs (big-mlp) the column blocks run the same kernel arithmetic and the
// result is the same to the bit; for other widths (200, 333) the narrower blocks get other
// kernels (blocking, remainders) and the last bits may differ: at most 1e-5 relative.
TEST(Gemm, SplitOverThreadsMatchesOneThread) {
  BackendGuard guard;
  ThreadsGuard tguard;
  // 129 rows or columns: two blocks of 64 and one left over, which a split must not drop.
  const int shapes[][3] = {{64, 1000, 200}, {32, 1000, 1000}, {200, 1000, 64}, {512, 200, 100}, {50, 333, 300}, {129, 129, 300}};
  for (GemmBackend be : backends())
    for (const auto& s : shapes) {
      ASSERT_GE(static_cast<double>(s[0]) * s[1] * s[2], mm::kParallelMinMacs);
      for (Op oa : {Op::N, Op::T})
        for (Op ob : {Op::N, Op::T}) {
          mm::set_threads(2);
          check(be, oa, ob, s[0], s[1], s[2], false);
          // one thread vs two on the same inputs
          std::mt19937 rng(5);
          std::normal_distribution<float> nd;
          const int M = s[0], N = s[1], K = s[2];
          std::vector<float> A(static_cast<std::size_t>(M * K)), B(static_cast<std::size_t>(K * N)),
              C1(static_cast<std::size_t>(M * N)), C2(C1.size());
          for (auto& x : A) x = nd(rng);
          for (auto& x : B) x = nd(rng);
          const int lda = oa == Op::N ? K : M, ldb = ob == Op::N ? N : K;
          mm::set_gemm_backend(be);
          mm::set_threads(1);
          mm::gemm(oa, ob, M, N, K, A.data(), lda, B.data(), ldb, C1.data(), N);
          mm::set_threads(2);
          mm::gemm(oa, ob, M, N, K, A.data(), lda, B.data(), ldb, C2.data(), N);
          if (N == 1000) {
            EXPECT_TRUE(C1 == C2) << mm::gemm_backend_name(be) << " op " << int(oa) << int(ob) << " M" << M << " N" << N;
          } else {
            for (std::size_t i = 0; i < C1.size(); ++i) ASSERT_NEAR(C1[i], C2[i], 1e-5 * (1.0 + std::fabs(C1[i]))) << i;
          }
        }
    }
}

// x W with W larger than the L2 (big-mlp's 1000 x 1000) runs in panels and chunks of W
// (gemm.cpp), each chunk continuing the outputs' fused multiply-add chains: on an AVX-512 CPU,
// where libxsmm's single call is one chain per output in k's order (makemore_gemm_bench's last
// column), the result is that chain to the bit, from zero and from C (accumulate); and a ragged
// shape (chunks and panels with remainders, 7 rows) is the product to float rounding.
TEST(Gemm, WideWeightProductIsOneFmaChainPerOutput) {
  if (!mm::gemm_backend_available(GemmBackend::Xsmm)) GTEST_SKIP() << "no libxsmm in this build";
  BackendGuard guard;
  ThreadsGuard tguard;
  mm::set_threads(1);
  check(GemmBackend::Xsmm, Op::N, Op::N, 7, 517, 1037, false);
  check(GemmBackend::Xsmm, Op::N, Op::N, 7, 517, 1037, true);
  if (!__builtin_cpu_supports("avx512f")) return;
  const int M = 32, N = 1000, K = 1000;
  std::mt19937 rng(9);
  std::normal_distribution<float> nd;
  std::vector<float> A(static_cast<std::size_t>(M * K)), B(static_cast<std::size_t>(K * N)), C(static_cast<std::size_t>(M * N));
  for (auto& x : A) x = nd(rng);
  for (auto& x : B) x = nd(rng);
  for (bool acc : {false, true}) {
    for (auto& x : C) x = nd(rng);
    const std::vector<float> C0 = C;
    mm::gemm(Op::N, Op::N, M, N, K, A.data(), K, B.data(), N, C.data(), N, acc);
    int differ = 0;
    for (int i = 0; i < M; ++i)
      for (int j = 0; j < N; ++j) {
        float s = acc ? C0[static_cast<std::size_t>(i * N + j)] : 0.0f;
        for (int k = 0; k < K; ++k)
          s = std::fma(A[static_cast<std::size_t>(i * K + k)], B[static_cast<std::size_t>(k * N + j)], s);
        differ += s != C[static_cast<std::size_t>(i * N + j)];
      }
    EXPECT_EQ(differ, 0) << "accumulate " << acc;
  }
}

TEST(Parallel, RunsEveryTaskOnceAndNestedCallsRunSerially) {
  ThreadsGuard tguard;
  mm::set_threads(2);
  std::vector<int> hits(2, 0), nested(4, 0);
  mm::parallel_run(2, [&](int i) {
    ++hits[static_cast<std::size_t>(i)];
    // the team is busy: a nested call runs all its tasks on this thread
    mm::parallel_run(2, [&](int j) { ++nested[static_cast<std::size_t>(2 * i + j)]; });
    EXPECT_FALSE(mm::try_parallel_run(2, [](int) {}));
  });
  EXPECT_EQ(hits, (std::vector<int>{1, 1}));
  EXPECT_EQ(nested, (std::vector<int>{1, 1, 1, 1}));
  for (int round = 0; round < 200; ++round) {  // many short batches: no lost wake-up
    std::vector<int> h(2, 0);
    mm::parallel_run(2, [&](int i) { h[static_cast<std::size_t>(i)] = round; });
    ASSERT_EQ(h, (std::vector<int>{round, round}));
  }
  mm::set_threads(1);
  EXPECT_FALSE(mm::try_parallel_run(2, [](int) {}));
}

// Evaluation over two model copies gives the one-thread number to the bit (chunk sums in order).
TEST(Parallel, EvaluationIsTheSameForAnyThreadCount) {
  ThreadsGuard tguard;
  mm::Config cfg = mm::load_preset("lecture-deep");
  mm::Model model(cfg, 27);
  mm::TorchGenerator gen(3);
  model.init(gen);
  mm::Examples ex;
  ex.block_size = 3;
  std::mt19937 rng(9);
  for (int i = 0; i < 5000; ++i) {
    for (int t = 0; t < 3; ++t) ex.x.push_back(static_cast<int32_t>(rng() % 27));
    ex.y.push_back(static_cast<int32_t>(rng() % 27));
  }
  mm::set_threads(1);
  const double one = model.evaluate(ex, 512);
  mm::set_threads(2);
  const double two = model.evaluate(ex, 512);
  EXPECT_EQ(one, two);
  EXPECT_NEAR(one, std::log(27.0), 1.0);  // an untrained model: near -ln(1/27)
}

// A large model's optimizer step splits over the threads: every rule gives the same bits.
TEST(Parallel, OptimizerStepIsTheSameOverTwoThreads) {
  ThreadsGuard tguard;
  const std::size_t n = mm::kParallelMinUpdate + 1000;
  std::mt19937 rng(4);
  std::normal_distribution<float> nd;
  mm::FloatBuf p0(n), g(n);
  for (auto& x : p0) x = nd(rng);
  for (auto& x : g) x = nd(rng);
  for (const char* type : {"sgd", "adam", "rmsprop", "adamw"}) {
    mm::OptimizerSpec spec = mm::OptimizerSpec::defaults(*mm::optimizer_kind(type));
    if (spec.kind == mm::OptimizerKind::Sgd) spec.momentum = 0.9;
    mm::FloatBuf p[2] = {p0, p0};
    for (int t = 0; t < 2; ++t) {
      mm::set_threads(t + 1);
      mm::Optimizer opt(spec, n);
      for (int s = 0; s < 3; ++s) opt.step(p[t], g, 0.01);
    }
    EXPECT_TRUE(p[0] == p[1]) << type;
    EXPECT_FALSE(p[0] == p0) << type;
  }
}

// Tanh splits a large activation (big-mlp's 32 x 1000 and up) over the threads: the same bits
// forward and backward as one thread, and a NaN or infinity in any piece still reported.
TEST(Parallel, TanhOverThreadsGivesTheOneThreadBits) {
  ThreadsGuard tguard;
  std::mt19937 rng(12);
  std::normal_distribution<float> nd(0.0f, 2.0f);
  mm::Mat x(33, 1000), dout(33, 1000);  // 33,000 floats: pieces of whole vectors, the last shorter
  for (Eigen::Index i = 0; i < x.size(); ++i) {
    x.data()[i] = nd(rng);
    dout.data()[i] = nd(rng);
  }
  mm::Mat out[3], dx[3];
  for (int t = 1; t <= 3; ++t) {
    mm::set_threads(t);
    mm::Tanh tanh;
    tanh.forward(x, mm::ForwardContext(mm::Mode::Train));
    EXPECT_TRUE(tanh.input_finite());
    tanh.backward(dout, &dx[t - 1]);
    out[t - 1] = tanh.out();
    for (const Eigen::Index at : {Eigen::Index{5}, x.size() - 3}) {  // first piece, last piece
      mm::Mat bad = x;
      bad.data()[at] = std::numeric_limits<float>::infinity();
      tanh.forward(bad, mm::ForwardContext(mm::Mode::Train));
      EXPECT_FALSE(tanh.input_finite()) << t << " threads, at " << at;
    }
  }
  for (int t = 1; t < 3; ++t) {
    EXPECT_EQ(std::memcmp(out[0].data(), out[t].data(), sizeof(float) * static_cast<std::size_t>(x.size())), 0) << t + 1;
    EXPECT_EQ(std::memcmp(dx[0].data(), dx[t].data(), sizeof(float) * static_cast<std::size_t>(x.size())), 0) << t + 1;
  }
  EXPECT_GT(out[0].cwiseAbs().maxCoeff(), 0.9f);
}

// BatchNorm1d splits a large block's columns over the threads: its output, xhat's effect on the
// backward, the running statistics, dgamma, dbeta and dx get one thread's bits, in training and
// in evaluation, for a width of whole vectors and an odd one.
TEST(Parallel, BatchNormOverThreadsGivesTheOneThreadBits) {
  ThreadsGuard tguard;
  for (const Eigen::Index C : {Eigen::Index{1000}, Eigen::Index{1037}}) {
    SCOPED_TRACE(C);
    std::mt19937 rng(13);
    std::normal_distribution<float> nd(0.5f, 2.0f);
    mm::Mat x(32, C), dout(32, C);
    for (Eigen::Index i = 0; i < x.size(); ++i) {
      x.data()[i] = nd(rng);
      dout.data()[i] = nd(rng);
    }
    std::vector<std::vector<float>> results;
    for (int t = 1; t <= 3; ++t) {
      mm::set_threads(t);
      mm::ParamStore store;
      mm::BatchNormOptions opt;
      opt.momentum = 0.1;
      mm::BatchNorm1d bn(opt);
      bn.build(1, static_cast<int>(C), store, "bn.");
      store.finalize();
      for (std::size_t i = 0; i < store.values().size(); ++i) store.values()[i] = 0.5f + 0.001f * static_cast<float>(i % 97);
      std::vector<float> r;
      const auto keep = [&r](const float* p, std::size_t n) { r.insert(r.end(), p, p + n); };
      for (const mm::Mode mode : {mm::Mode::Train, mm::Mode::Eval}) {
        mm::Mat dx;
        bn.forward(x, mm::ForwardContext(mode));
        bn.backward(dout, &dx);
        keep(bn.out().data(), static_cast<std::size_t>(bn.out().size()));
        keep(dx.data(), static_cast<std::size_t>(dx.size()));
        keep(store.grads().data(), store.grads().size());
        keep(store.buffers().data(), store.buffers().size());
      }
      results.push_back(std::move(r));
    }
    ASSERT_EQ(results[0].size(), results[1].size());
    EXPECT_EQ(std::memcmp(results[0].data(), results[1].data(), results[0].size() * sizeof(float)), 0);
    EXPECT_EQ(std::memcmp(results[0].data(), results[2].data(), results[0].size() * sizeof(float)), 0);
  }
}

// Optimizer::update over two and three threads splits a range at whole rows of any length
// (Model::backward(done)'s row): every element is updated once, as one thread's update does it,
// rows that do not divide the range and ranges that do not start at 0 included.
TEST(Parallel, UpdateSplitAtRowsUpdatesEveryElementOnce) {
  ThreadsGuard tguard;
  const std::size_t n = mm::kParallelMinUpdate + 4096 + 37, k0 = 96, k1 = n - 5;
  std::mt19937 rng(6);
  std::normal_distribution<float> nd;
  mm::FloatBuf p0(n), g(n);
  for (auto& x : p0) x = nd(rng);
  for (auto& x : g) x = nd(rng);
  const mm::OptimizerSpec spec = mm::OptimizerSpec::defaults(mm::OptimizerKind::Adam);
  mm::FloatBuf one = p0;
  mm::set_threads(1);
  mm::Optimizer(spec, n).update(one.data(), g.data(), 0.01, k0, k1);
  for (std::size_t row : {std::size_t{1}, std::size_t{7}, std::size_t{1000}, std::size_t{4093}})
    for (int t : {2, 3}) {
      mm::set_threads(t);
      mm::FloatBuf p = p0;
      mm::Optimizer(spec, n).update(p.data(), g.data(), 0.01, k0, k1, row);
      EXPECT_TRUE(p == one) << "row " << row << ", " << t << " threads";
    }
  EXPECT_TRUE(std::equal(one.begin(), one.begin() + k0, p0.begin()));  // outside [k0, k1): untouched
  EXPECT_FALSE(one[k1 - 1] == p0[k1 - 1]);
}

// Over threads, a wide weight's x W runs as a pipeline over W's rows (each thread continuing the
// chains the previous one left in each panel) and a weight's gradient x^T dout splits by W's
// rows: with libxsmm both are the one-thread result to the bit, for 2 and 3 threads and ragged
// shapes (chunks, panels and row blocks with remainders).
// A Linear's backward in blocks of W's rows (the update inside it applies each block while in
// cache): dW and dx have the bits of gemm()'s two calls on 1, 2 and 3 threads; every row of W is
// reported once, after its rows of dW are final and with its rows of W read for the last time
// (the callback overwrites them, as the update does); a W that fits the L2 is left to gemm(), and
// so is a shape whose blocks libxsmm sums in another order (1037 x 517 declines on some CPUs).
TEST(Gemm, LinearBackwardInRowBlocksGivesTheTwoProductsBits) {
  if (!mm::gemm_backend_available(GemmBackend::Xsmm)) GTEST_SKIP() << "no libxsmm in this build";
  BackendGuard guard;
  ThreadsGuard tguard;
  mm::set_gemm_backend(GemmBackend::Xsmm);
  struct Case {
    int M, In, Out;
    bool must_run;
  };
  for (const Case& c :
       {Case{32, 1000, 1000, true}, Case{32, 600, 600, true}, Case{16, 300, 1000, true}, Case{32, 1037, 517, false}}) {
    std::mt19937 rng(5);
    std::normal_distribution<float> nd;
    const auto n = [](int a, int b) { return static_cast<std::size_t>(a) * static_cast<std::size_t>(b); };
    std::vector<float> x(n(c.M, c.In)), dout(n(c.M, c.Out)), W(n(c.In, c.Out));
    for (auto* v : {&x, &dout, &W})
      for (auto& e : *v) e = nd(rng);
    for (int t : {1, 2, 3}) {
      SCOPED_TRACE(::testing::Message() << c.M << " x " << c.In << " x " << c.Out << ", " << t << " threads");
      mm::set_threads(t);
      std::vector<float> dW1(W.size()), dx1(n(c.M, c.In));
      mm::gemm(Op::T, Op::N, c.In, c.Out, c.M, x.data(), c.In, dout.data(), c.Out, dW1.data(), c.Out);
      mm::gemm(Op::N, Op::T, c.M, c.In, c.Out, dout.data(), c.Out, W.data(), c.Out, dx1.data(), c.In);
      for (bool with_dx : {true, false}) {
        std::vector<float> W2 = W, dW2(W.size(), std::nanf("")), dx2(dx1.size(), std::nanf(""));
        std::vector<int> times(static_cast<std::size_t>(c.In), 0);
        bool final_when_reported = true;
        std::mutex mu;
        const bool ran = mm::gemm_linear_backward_rows(
            c.M, c.In, c.Out, x.data(), dout.data(), W2.data(), dW2.data(), with_dx ? dx2.data() : nullptr, [&](int r0, int r1) {
              std::lock_guard<std::mutex> lock(mu);
              const std::size_t a = n(r0, c.Out), b = n(r1, c.Out);
              final_when_reported &= r0 < r1 && std::memcmp(&dW1[a], &dW2[a], (b - a) * sizeof(float)) == 0;
              std::fill(W2.begin() + static_cast<std::ptrdiff_t>(a), W2.begin() + static_cast<std::ptrdiff_t>(b), std::nanf(""));
              for (int r = r0; r < r1; ++r) ++times[static_cast<std::size_t>(r)];
            });
        if (!ran) {
          EXPECT_FALSE(c.must_run);
          EXPECT_TRUE(std::all_of(times.begin(), times.end(), [](int k) { return k == 0; }));
          continue;
        }
        EXPECT_TRUE(final_when_reported);
        EXPECT_TRUE(std::all_of(times.begin(), times.end(), [](int k) { return k == 1; }));
        EXPECT_EQ(0, std::memcmp(dW1.data(), dW2.data(), dW1.size() * sizeof(float)));
        if (with_dx) {
          EXPECT_EQ(0, std::memcmp(dx1.data(), dx2.data(), dx1.size() * sizeof(float)));
        }
      }
    }
  }
  std::vector<float> small(64 * 64), dsmall(64 * 64);
  auto never = [](int, int) { ADD_FAILURE() << "a W that fits the L2 reported rows"; };
  EXPECT_FALSE(
      mm::gemm_linear_backward_rows(64, 64, 64, small.data(), small.data(), small.data(), dsmall.data(), dsmall.data(), never));
  mm::set_gemm_backend(GemmBackend::Eigen);
  std::vector<float> big(1000 * 1000), dbig(1000 * 1000), thin(32 * 1000), dthin(32 * 1000);
  EXPECT_FALSE(
      mm::gemm_linear_backward_rows(32, 1000, 1000, thin.data(), thin.data(), big.data(), dbig.data(), dthin.data(), never));
}

TEST(Gemm, WeightRowsOverThreadsGiveTheOneThreadBits) {
  if (!mm::gemm_backend_available(GemmBackend::Xsmm)) GTEST_SKIP() << "no libxsmm in this build";
  BackendGuard guard;
  ThreadsGuard tguard;
  mm::set_gemm_backend(GemmBackend::Xsmm);
  struct Case {
    Op oa;
    int M, N, K;
  };
  const Case cases[] = {
      {Op::N, 32, 1000, 1000}, {Op::N, 7, 517, 1037}, {Op::N, 5, 300, 1500}, {Op::T, 1000, 1000, 32}, {Op::T, 1037, 517, 7}};
  for (const Case& c : cases) {
    std::mt19937 rng(11);
    std::normal_distribution<float> nd;
    std::vector<float> A(static_cast<std::size_t>(c.M * c.K)), B(static_cast<std::size_t>(c.K * c.N)),
        C1(static_cast<std::size_t>(c.M * c.N));
    for (auto& x : A) x = nd(rng);
    for (auto& x : B) x = nd(rng);
    const int lda = c.oa == Op::N ? c.K : c.M;
    mm::set_threads(1);
    mm::gemm(c.oa, Op::N, c.M, c.N, c.K, A.data(), lda, B.data(), c.N, C1.data(), c.N);
    for (int t : {2, 3}) {
      mm::set_threads(t);
      std::vector<float> C2(C1.size(), std::nanf(""));
      mm::gemm(c.oa, Op::N, c.M, c.N, c.K, A.data(), lda, B.data(), c.N, C2.data(), c.N);
      EXPECT_EQ(0, std::memcmp(C1.data(), C2.data(), C1.size() * sizeof(float)))
          << "op " << int(c.oa) << " " << c.M << "x" << c.N << "x" << c.K << ", " << t << " threads";
    }
  }
}
