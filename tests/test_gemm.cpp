// The matrix-product backends: every transpose combination and the lecture's shapes, each
// backend against a double-precision reference, and a whole training step under both.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "makemore/gemm.h"
#include "makemore/model.h"
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
          << mm::gemm_backend_name(be) << " op " << int(oa) << int(ob) << " M" << M << " N" << N << " K" << K
          << " at " << i << "," << j;
    }
}

TEST(Gemm, AllTransposesAndShapesBothBackends) {
  BackendGuard guard;
  const int shapes[][3] = {{32, 200, 30}, {30, 200, 32}, {32, 30, 200}, {32, 27, 200}, {200, 27, 32},
                           {32, 200, 27}, {1, 27, 200}, {7, 5, 3}, {33, 17, 65}, {32, 100, 100}};
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
