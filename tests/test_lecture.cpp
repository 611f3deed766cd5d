// The lecture's published numbers that a unit test can afford: with the lecture's seeds, the
// split sizes and the step-0 minibatch loss of all six presets (notebook / PyTorch 1.13.1
// values, ../shared/reference/lecture-numbers.md). Needs data/names.txt (scripts/setup.sh).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "makemore/data.h"
#include "makemore/lecture.h"
#include "makemore/model.h"
#include "makemore/presets.h"
#include "makemore/train.h"

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
  const mm::WordList wl = mm::load_words(kNames);
  const mm::Vocab vocab = mm::Vocab::from_words(wl.words);
  const mm::Splits splits = mm::make_splits(wl.words, vocab, 3, 42);
  EXPECT_EQ(static_cast<int>(splits.train.size()), mm::lecture::kSplitExamples[0]);
  EXPECT_EQ(static_cast<int>(splits.val.size()), mm::lecture::kSplitExamples[1]);
  EXPECT_EQ(static_cast<int>(splits.test.size()), mm::lecture::kSplitExamples[2]);
  auto four = [](double v) { return std::round(v * 1e4); };
  for (const auto& v : mm::lecture::kVariants) EXPECT_EQ(four(step0(v.preset, splits)), four(v.step0_loss)) << v.preset;
  EXPECT_EQ(four(step0("lecture-deep", splits)), four(mm::lecture::kDeepStep0Loss));
}

}  // namespace
