// Model::evaluate forwards each distinct context once (distinct_contexts): the numbers it
// returns are those of forwarding every example, to the bit.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "makemore/config.h"
#include "makemore/data.h"
#include "makemore/gemm.h"
#include "makemore/layers.h"
#include "makemore/model.h"
#include "makemore/parallel.h"
#include "makemore/presets.h"
#include "test_util.h"

namespace {

mm::Examples first_examples(const mm::Examples& ex, std::size_t n) {
  mm::Examples out;
  out.block_size = ex.block_size;
  out.x.assign(ex.x.begin(), ex.x.begin() + static_cast<std::ptrdiff_t>(n) * ex.block_size);
  out.y.assign(ex.y.begin(), ex.y.begin() + static_cast<std::ptrdiff_t>(n));
  return out;
}

// The evaluation as it was before distinct contexts: every example forwarded, chunk by chunk,
// each chunk's losses summed in double and the chunk sums added in order.
double every_example(mm::Model& model, const mm::Examples& ex, int chunk) {
  mm::Mat scratch;
  double total = 0;
  for (std::size_t start = 0; start < ex.size(); start += static_cast<std::size_t>(chunk)) {
    const int b = static_cast<int>(std::min(static_cast<std::size_t>(chunk), ex.size() - start));
    const mm::Mat& logits = model.forward(ex.x.data() + start * static_cast<std::size_t>(ex.block_size), b, mm::Mode::Eval);
    total += mm::SoftmaxCrossEntropy::sum_loss_fast(logits, ex.y.data() + start, scratch);
  }
  return total / static_cast<double>(ex.size());
}

}  // namespace

TEST(DistinctContexts, EachContextOnceInOrderOfFirstAppearance) {
  mm::Examples ex;
  ex.block_size = 2;
  ex.x = {0, 1, 2, 3, 0, 1, 0, 0, 2, 3, 1, 0};
  ex.y = {5, 6, 7, 8, 9, 10};
  const mm::DistinctContexts d = mm::distinct_contexts(ex);
  EXPECT_EQ(d.count(), 4u);
  EXPECT_EQ(d.x, (std::vector<int32_t>{0, 1, 2, 3, 0, 0, 1, 0}));
  EXPECT_EQ(d.index, (std::vector<int32_t>{0, 1, 0, 2, 1, 3}));
  ex.x.pop_back();
  EXPECT_THROW(mm::distinct_contexts(ex), std::invalid_argument);
}

TEST(DistinctContexts, SeveralSetsShareOneTable) {
  mm::Examples a, b;
  a.block_size = b.block_size = 2;
  a.x = {0, 1, 2, 3, 0, 1};
  a.y = {5, 6, 7};
  b.x = {2, 3, 4, 4, 0, 1, 4, 4};
  b.y = {8, 9, 10, 11};
  const mm::DistinctContexts d = mm::distinct_contexts({&a, &b});
  EXPECT_EQ(d.count(), 3u);
  EXPECT_EQ(d.x, (std::vector<int32_t>{0, 1, 2, 3, 4, 4}));
  EXPECT_EQ(d.index, (std::vector<int32_t>{0, 1, 0, 1, 2, 0, 2}));
  b.block_size = 1;
  b.x.resize(4);
  EXPECT_THROW(mm::distinct_contexts({&a, &b}), std::invalid_argument);
  EXPECT_EQ(mm::distinct_contexts(std::vector<const mm::Examples*>{}).count(), 0u);
}

TEST(DistinctContexts, NamesHaveFewContexts) {
  NEED_DATA();
  const mm::Examples& ex = L->splits.train;
  const mm::DistinctContexts d = mm::distinct_contexts(ex);
  ASSERT_EQ(d.index.size(), ex.size());
  EXPECT_LT(d.count() * 20, ex.size());  // names.txt at block size 3: ~5,300 of 182,625
  for (std::size_t i = 0; i < ex.size(); i += 97)
    for (int t = 0; t < 3; ++t)
      ASSERT_EQ(d.x[static_cast<std::size_t>(d.index[i]) * 3 + static_cast<std::size_t>(t)],
                ex.x[i * 3 + static_cast<std::size_t>(t)]);
}

// 20,480 examples: whole chunks, so every forward has 1,024 rows, as all of evaluate's do. To
// the bit where a row's forward does not depend on its place in the chunk: so on the default
// paths, the token path (simd or portable) and Eigen's products. libxsmm's kernel for the
// lecture's first Linear (1024 x 30 x 200, MAKEMORE_TOKEN_LINEAR=off, the default without
// AVX-512) sums a few rows in another order: within float rounding there.
TEST(Evaluate, DistinctContextsGiveEveryExamplesNumberToTheBit) {
  const bool exact = mm::token_linear() != mm::TokenLinear::Off || mm::gemm_backend() == mm::GemmBackend::Eigen;
  NEED_DATA();
  for (const char* preset : {"lecture-kaiming", "lecture-batchnorm", "lecture-deep", "deep-residual-layernorm", "wavenet"}) {
    SCOPED_TRACE(preset);
    const mm::Config cfg = mm::load_preset(preset);
    const mm::Splits splits =
        cfg.block_size == 3 ? L->splits : mm::make_splits(L->splits.train_words, L->vocab, cfg.block_size, 42);
    const mm::Examples ex = first_examples(splits.train, 20480);
    mm::Model model(cfg, static_cast<int>(L->vocab.size()));
    mm::TorchGenerator gen(11);
    model.init(gen);
    // Running statistics that are not the init's 0 and 1, as a trained BatchNorm has.
    for (float& v : model.params().buffers()) v = 0.5f + 0.25f * std::sin(&v - model.params().buffers().data());
    const double want = every_example(model, ex, 1024), tol = exact ? 0.0 : 1e-9 * want;
    EXPECT_NEAR(model.evaluate(ex, 1024), want, tol);
    mm::set_threads(2);
    EXPECT_NEAR(model.evaluate(ex, 1024), want, tol);
    mm::set_threads(1);
  }
}

// The three splits in one evaluation (the contexts they share forwarded once) give each
// split's number as its own evaluation does, to the bit on the default paths, on one thread
// and two, and a split with no examples its 0.
TEST(Evaluate, SplitsTogetherGiveEachSplitsOwnNumber) {
  const bool exact = mm::token_linear() != mm::TokenLinear::Off || mm::gemm_backend() == mm::GemmBackend::Eigen;
  NEED_DATA();
  const mm::Splits& s = L->splits;
  const std::size_t shared = mm::distinct_contexts({&s.train, &s.val, &s.test}).count(),
                    train = mm::distinct_contexts(s.train).count(), val = mm::distinct_contexts(s.val).count(),
                    test = mm::distinct_contexts(s.test).count();
  EXPECT_LT(shared, train + val);
  std::printf("distinct contexts: train %zu, val %zu, test %zu, the three splits together %zu\n", train, val, test, shared);
  for (const char* preset : {"lecture-batchnorm", "deep-residual-layernorm"}) {
    SCOPED_TRACE(preset);
    mm::Model model(mm::load_preset(preset), static_cast<int>(L->vocab.size()));
    mm::TorchGenerator gen(5);
    model.init(gen);
    for (float& v : model.params().buffers()) v = 0.5f + 0.25f * std::cos(&v - model.params().buffers().data());
    const mm::Examples none{3, {}, {}};
    for (int t : {1, 2}) {
      mm::set_threads(t);
      const std::vector<double> all = model.evaluate({&s.train, &s.val, &none, &s.test});
      ASSERT_EQ(all.size(), 4u);
      const double alone[4] = {model.evaluate(s.train), model.evaluate(s.val), 0.0, model.evaluate(s.test)};
      for (int k = 0; k < 4; ++k) EXPECT_NEAR(all[static_cast<std::size_t>(k)], alone[k], exact ? 0.0 : 1e-9) << k;
    }
    mm::set_threads(1);
  }
}
