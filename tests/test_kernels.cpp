// The kernel sets (src/kernels/kernels.h): one binary carries the training step's kernels for
// several instruction sets and picks one from the CPU. Every set this CPU runs is exercised here,
// not only the one it picks: each must train the lecture's networks to the same numbers up to
// float rounding, and a set that does not exist is refused with the choices named.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "makemore/data.h"
#include "makemore/error.h"
#include "makemore/layers.h"
#include "makemore/model.h"
#include "makemore/perf.h"
#include "makemore/presets.h"
#include "makemore/rng.h"
#include "makemore/train.h"
#include "test_util.h"
// White-box: the kernel table itself (private to the library, so not on the include path).
#include "../src/kernels/kernels.h"

namespace {

// Puts back the kernel set and the token path a test changed.
class KernelGuard {
 public:
  KernelGuard() : set_(mm::kernel_set()), tokens_(mm::token_linear()) {}
  ~KernelGuard() {
    mm::set_kernel_set(set_);
    mm::set_token_linear(tokens_);
  }

 private:
  std::string set_;
  mm::TokenLinear tokens_;
};

TEST(KernelSets, TheBestSetThisCpuRunsIsInUse) {
  const std::vector<std::string> sets = mm::kernel_sets();
  ASSERT_FALSE(sets.empty());
  const char* env = std::getenv("MAKEMORE_KERNELS");
  if (env == nullptr || *env == '\0') {
    EXPECT_EQ(mm::kernel_set(), sets.front());
  }
  // A portable build always holds the baseline set, last; a native build holds its one set.
  if (sets.front() == "native") {
    EXPECT_EQ(sets.size(), 1u);
  } else {
    EXPECT_EQ(sets.back(), "generic");
  }
}

TEST(KernelSets, AnUnknownSetIsRefusedNamingTheChoices) {
  KernelGuard guard;
  const std::string before = mm::kernel_set();
  try {
    mm::set_kernel_set("avx1024");
    FAIL() << "accepted an unknown kernel set";
  } catch (const mm::Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("avx1024"), std::string::npos) << msg;
    for (const std::string& s : mm::kernel_sets()) EXPECT_NE(msg.find(s), std::string::npos) << msg;
  }
  EXPECT_EQ(mm::kernel_set(), before);
}

TEST(KernelSets, EachMeasuresItsOwnFmaPeak) {
  KernelGuard guard;
  for (const std::string& s : mm::kernel_sets()) {
    SCOPED_TRACE(s);
    mm::set_kernel_set(s);
    EXPECT_EQ(mm::kernel_set(), s);
    EXPECT_GT(mm::measure_fma_peak_gflops(0.01), 0.1);
    EXPECT_NE(std::string(mm::fma_vector_isa()), "");
  }
}

// The 16 x 16 register-block transpose (gemm.cpp's transposed operands, in the sets that have
// it): every element lands in its transposed place, for sizes that are and are not multiples of
// 16 and strides wider than the rows, no padding of the input is read into the output, and nothing
// past each output row's first `rows` floats is written.
TEST(KernelSets, TransposeMovesEveryElementAndWritesNothingElse) {
  KernelGuard guard;
  int tested = 0;
  for (const std::string& set : mm::kernel_sets()) {
    mm::set_kernel_set(set);
    const mm::kernels::Table& t = mm::kernels::kernels();
    if (!t.transpose) continue;
    ++tested;
    for (const int rows : {1, 5, 16, 17, 32, 33, 64, 100})
      for (const int cols : {1, 3, 16, 27, 30, 31, 64, 200}) {
        const int ldi = cols + 3, ldo = rows + 5;
        std::vector<float> in(static_cast<std::size_t>(rows * ldi), -2.0f), out(static_cast<std::size_t>(cols * ldo), -1.0f);
        for (int i = 0; i < rows; ++i)
          for (int j = 0; j < cols; ++j) in[static_cast<std::size_t>(i * ldi + j)] = static_cast<float>(i * cols + j);
        t.transpose(in.data(), rows, cols, ldi, out.data(), ldo);
        int wrong = 0;
        for (int j = 0; j < cols; ++j)
          for (int i = 0; i < ldo; ++i) {
            const float want = i < rows ? static_cast<float>(i * cols + j) : -1.0f;
            wrong += out[static_cast<std::size_t>(j * ldo + i)] != want;
          }
        EXPECT_EQ(wrong, 0) << t.name << ": " << rows << " x " << cols;
      }
  }
  if (__builtin_cpu_supports("avx512f")) {
    EXPECT_GT(tested, 0) << "no kernel set of this AVX-512 CPU has the transpose";
  }
}

// 300 steps of a preset (200 for the deep one) under one kernel set; the step-0 loss, the last
// step's and the three split losses.
std::vector<double> train_under(const std::string& set, const std::string& preset, const std::string& optimizer) {
  const mm_test::Lecture* L = mm_test::lecture_data();
  mm::set_kernel_set(set);
  mm::TrainOverrides o;
  o.steps = preset == "lecture-deep" ? 200 : 300;
  o.optimizer = optimizer;
  if (!optimizer.empty()) o.lr = 1e-3;  // the preset's SGD rates are far too large for these
  const mm::Config cfg = mm::apply_overrides(mm::load_preset(preset), o, preset);
  static const mm::Dataset words = mm::Dataset::load(std::string(MM_SOURCE_DIR) + "/data/names.txt");
  const mm::Splits splits = words.split(cfg.block_size, cfg.split_seed);  // wavenet reads 8 tokens
  mm::Model model(cfg, L->vocab.size());
  const mm::TrainOutcome out = mm::train_and_evaluate(model, cfg, splits, {});
  return {out.stats.initial_loss, out.stats.last_loss, out.losses.train, out.losses.val, out.losses.test};
}

// The sets differ in vector width and in fused multiply-adds, so their sums round differently;
// over a few hundred SGD steps that stays far below the 1e-3 allowed here (measured: ~1e-5),
// while a wrong kernel (a lost term, a wrong lane) moves the losses by 1e-2 and more.
void expect_every_set_agrees(const std::string& preset, const std::string& optimizer = "") {
  KernelGuard guard;
  const std::vector<std::string> sets = mm::kernel_sets();
  const std::vector<double> ref = train_under(sets.back(), preset, optimizer);
  for (const double v : ref) EXPECT_TRUE(std::isfinite(v));
  EXPECT_LT(ref[1], ref[0]);  // it learned
  for (const std::string& s : sets) {
    SCOPED_TRACE(s + " vs " + sets.back());
    const std::vector<double> got = train_under(s, preset, optimizer);
    for (std::size_t i = 0; i < ref.size(); ++i) EXPECT_NEAR(got[i], ref[i], 1e-3 * std::fabs(ref[i])) << "value " << i;
  }
}

TEST(KernelSets, EverySetTrainsLectureBatchnormAlike) {
  NEED_DATA();
  expect_every_set_agrees("lecture-batchnorm");
}

TEST(KernelSets, EverySetTrainsLectureKaimingWithRmspropAlike) {
  NEED_DATA();
  expect_every_set_agrees("lecture-kaiming", "rmsprop");
}

TEST(KernelSets, EverySetTrainsWavenetWithAdamAlike) {
  NEED_DATA();
  expect_every_set_agrees("wavenet", "adam");
}

TEST(KernelSets, EverySetTrainsDeepResidualLayernormAlike) {
  NEED_DATA();
  expect_every_set_agrees("deep-residual-layernorm");
}

}  // namespace
