// The lecture's published numbers that a unit test can afford: with the lecture's seeds, the
// split sizes and the step-0 minibatch loss of all six presets (notebook / PyTorch 1.13.1
// values, docs/lecture-numbers.md). Needs data/names.txt (scripts/setup.sh).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <memory>
#include <vector>

#include "makemore/data.h"
#include "makemore/lecture.h"
#include "makemore/model.h"
#include "makemore/presets.h"
#include "makemore/train.h"
#include "test_util.h"

#ifndef MM_SOURCE_DIR
#define MM_SOURCE_DIR "."
#endif

namespace {

const std::string kNames = std::string(MM_SOURCE_DIR) + "/data/names.txt";

float step0(const std::string& preset, const mm::Splits& splits) {
  mm::Config cfg = mm::load_preset(preset);
  mm::Model model(cfg, 27);
  mm::TorchGenerator gen(cfg.seed);
  model.init(gen);
  mm::Trainer t(model, cfg, splits.train, gen);
  return t.step(0);
}

TEST(Lecture, SplitSizesAndStep0LossesOfAllSixPresets) {
  if (!std::filesystem::exists(kNames)) GTEST_SKIP() << kNames << " missing; run scripts/setup.sh";
  const mm::Splits splits = mm::Dataset::load(kNames).split(3, 42);
  EXPECT_EQ(static_cast<int>(splits.train.size()), mm::lecture::kSplitExamples[0]);
  EXPECT_EQ(static_cast<int>(splits.val.size()), mm::lecture::kSplitExamples[1]);
  EXPECT_EQ(static_cast<int>(splits.test.size()), mm::lecture::kSplitExamples[2]);
  auto four = [](double v) { return std::round(v * 1e4); };
  for (const auto& v : mm::lecture::kVariants) EXPECT_EQ(four(step0(v.preset, splits)), four(v.step0_loss)) << v.preset;
  EXPECT_EQ(four(step0("lecture-deep", splits)), four(mm::lecture::kDeepStep0Loss));
}

}  // namespace

// Studies run many trainings in one process (one per worker thread); each must give the same
// bits as a fresh process would. Heap allocations of odd sizes between the runs move where the
// next model's buffers land; the parameter store's 64-byte alignment keeps the vector code paths,
// and so the results, identical.
TEST(Lecture, RepeatedTrainingsInOneProcessAreBitIdentical) {
  if (!std::filesystem::exists(kNames)) GTEST_SKIP() << kNames << " missing; run scripts/setup.sh";
  const mm::Dataset data = mm::Dataset::load(kNames);
  const mm::Vocab& vocab = data.vocab();
  const mm::Splits splits = data.split(3, 42);
  mm::Config cfg = mm::load_preset("lecture-deep");
  cfg.steps = 30;
  std::vector<mm::FloatBuf> runs;
  std::vector<std::vector<char>> ballast;
  for (int r = 0; r < 3; ++r) {
    ballast.emplace_back(static_cast<std::size_t>(13 + 40 * r));
    mm::Model model(cfg, vocab.size());
    mm::TorchGenerator gen(cfg.seed);
    model.init(gen);
    mm::Trainer t(model, cfg, splits.train, gen);
    t.run();
    runs.push_back(model.params().values());
  }
  EXPECT_TRUE(runs[0] == runs[1]);
  EXPECT_TRUE(runs[1] == runs[2]);
}

// `train --steps 0` is how one reads the loss at initialization without training: the run
// reports the first minibatch's loss (what step 0 would print) and leaves the model as it was
// initialized, BatchNorm running statistics included (a train-mode forward moves them).
TEST(Lecture, ZeroStepRunReportsTheInitialLossAndKeepsTheInit) {
  NEED_DATA();
  const mm::Splits& splits = L->splits;
  mm::Config cfg = mm::load_preset("lecture-batchnorm");
  cfg.steps = 0;
  mm::Model model(cfg, L->vocab.size());
  mm::TorchGenerator gen(cfg.seed);
  model.init(gen);
  const mm::FloatBuf values = model.params().values(), buffers = model.params().buffers();
  mm::Trainer t(model, cfg, splits.train, gen);
  const mm::TrainStats st = t.run();
  EXPECT_EQ(st.steps, 0);
  EXPECT_FALSE(st.diverged);
  EXPECT_EQ(st.initial_loss, step0("lecture-batchnorm", splits));
  EXPECT_TRUE(model.params().values() == values);
  EXPECT_TRUE(model.params().buffers() == buffers);
}

// probe_next_loss (run at every checkpoint and after the last step, to catch an update that
// overflowed) must leave no trace: a lecture-deep run (BatchNorm running statistics move in a
// train-mode forward) probed after every step ends with the same bits, buffers and generator as
// one never probed, and the probe sees exactly the loss the next step then computes.
TEST(Lecture, ProbingTheNextLossChangesNothing) {
  NEED_DATA();
  const mm::Dataset data = mm::Dataset::load(kNames);
  const mm::Vocab& vocab = data.vocab();
  const mm::Splits splits = data.split(3, 42);
  mm::Config cfg = mm::load_preset("lecture-deep");
  cfg.steps = 20;
  auto train = [&](bool probe, std::vector<float>* probes, std::vector<float>* losses) {
    auto model = std::make_unique<mm::Model>(cfg, vocab.size());
    mm::TorchGenerator gen(cfg.seed);
    model->init(gen);
    mm::Trainer t(*model, cfg, splits.train, gen);
    for (int64_t i = 0; i < cfg.steps; ++i) {
      if (probe) probes->push_back(t.probe_next_loss());
      losses->push_back(t.step(i));
    }
    return std::make_pair(std::move(model), gen.random64());
  };
  std::vector<float> probes, probed_losses, losses;
  auto [a, next_a] = train(true, &probes, &probed_losses);
  auto [b, next_b] = train(false, nullptr, &losses);
  EXPECT_TRUE(a->params().values() == b->params().values());
  EXPECT_TRUE(a->params().buffers() == b->params().buffers());
  EXPECT_EQ(next_a, next_b);
  EXPECT_EQ(probed_losses, losses);
  EXPECT_EQ(probes, losses);
}
