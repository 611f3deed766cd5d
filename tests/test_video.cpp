// The lecture video's own first three runs (issue 17), where b1 is drawn from the generator but
// left out of the network: the presets video-original / video-fix-softmax / video-fix-tanh
// against PyTorch 1.13.1 running the video's code (tests/data/torch/video.json, written by
// tools/gen_video_fixture.py). Needs data/names.txt (scripts/setup.sh).
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "makemore/config.h"
#include "makemore/doctor.h"
#include "makemore/error.h"
#include "makemore/model.h"
#include "makemore/presets.h"
#include "makemore/train.h"
#include "test_util.h"

#ifndef MM_TEST_DATA_DIR
#define MM_TEST_DATA_DIR "tests/data"
#endif

namespace {

const nlohmann::json& fixture() {
  static const nlohmann::json j =
      nlohmann::json::parse(mm_test::read_file(std::filesystem::path(MM_TEST_DATA_DIR) / "torch" / "video.json"));
  return j;
}

struct Fresh {
  explicit Fresh(const std::string& preset, int64_t steps = 1)
      : cfg(with_steps(mm::load_preset(preset), steps)), model(cfg, 27), gen(cfg.seed) {
    model.init(gen);
  }
  static mm::Config with_steps(mm::Config c, int64_t steps) {
    c.steps = steps;
    return c;
  }
  mm::Config cfg;
  mm::Model model;
  mm::TorchGenerator gen;
};

}  // namespace

// Step 0 of each run prints PyTorch's loss to the video's 4 decimals (28.4938, 3.3277, 3.3134),
// and the parameter count is the video's [C, W1, W2, b2]: the drawn b1 is not in it.
TEST(Video, Step0LossesAndParameterCountsMatchPyTorch) {
  NEED_DATA();
  for (const auto& [preset, run] : fixture().at("runs").items()) {
    Fresh f(preset);
    mm::Trainer t(f.model, f.cfg, L->splits.train, f.gen);
    const float loss = t.step(0);
    const auto& logged = run.at("logged").at(0);
    EXPECT_EQ(fmt::format("{:.4f}", loss), logged.at("printed").get<std::string>()) << preset;
    EXPECT_NEAR(loss, logged.at("loss").get<double>(), 2e-5) << preset;
    EXPECT_EQ(f.model.num_params(), run.at("params").get<std::size_t>()) << preset;
  }
  EXPECT_EQ(fixture().at("runs").at("video-original").at("params").get<int>(), 11697);
}

// Runs 2 and 3 follow PyTorch's minibatch losses for the first few thousand steps: the same
// stream of draws and the same network, up to the last bits of float summation order.
TEST(Video, Runs2And3FollowPyTorchForThreeThousandSteps) {
  NEED_DATA();
  for (const char* preset : {"video-fix-softmax", "video-fix-tanh"}) {
    const auto& trace = fixture().at("runs").at(preset).at("trace");
    ASSERT_GE(trace.size(), 30u) << preset;
    const int64_t last = trace.back().at("step").get<int64_t>();
    Fresh f(preset, last + 1);
    mm::Trainer t(f.model, f.cfg, L->splits.train, f.gen);
    std::size_t k = 0;
    double worst = 0;
    for (int64_t i = 0; i <= last; ++i) {
      const float loss = t.step(i);
      if (k < trace.size() && trace[k].at("step").get<int64_t>() == i) {
        worst = std::max(worst, std::fabs(loss - trace[k].at("loss").get<double>()));
        ++k;
      }
    }
    EXPECT_EQ(k, trace.size()) << preset;
    EXPECT_LT(worst, 1e-4) << preset << ": largest |ours - PyTorch| over the trace";
  }
}

// The drawn bias consumes the generator in its place (the next layer's weights differ from a
// network without it) but is no parameter: not counted, not trained, not diagnosed.
TEST(Video, DrawnUnusedBiasIsDrawnButNotPartOfTheNetwork) {
  NEED_DATA();
  Fresh video("video-fix-softmax");
  mm::Config no_bias = video.cfg;
  no_bias.layers[0].bias_drawn_unused = false;
  mm::Model plain(no_bias, 27);
  mm::TorchGenerator gen(no_bias.seed);
  plain.init(gen);
  const auto& vp = video.model.params();
  EXPECT_EQ(vp.num_trainable(), plain.params().num_trainable());
  const int w2 = vp.find("layers.2.weight");
  ASSERT_GE(w2, 0);
  EXPECT_NE(vp.data(w2)[0], plain.params().data(plain.params().find("layers.2.weight"))[0]);
  const int unused = vp.find("layers.0.bias_unused");
  ASSERT_GE(unused, 0);
  EXPECT_FALSE(vp.info(unused).trainable);
  EXPECT_LT(vp.find("layers.0.bias"), 0);

  const mm::Diagnosis d = mm::inspect_training(mm::load_preset("video-original"), L->splits, 27, 2);
  for (const auto& p : d.snapshot.params) EXPECT_EQ(p.name.find("bias_unused"), std::string::npos) << p.name;
  for (const auto& f : d.findings)
    EXPECT_EQ((f.message + f.evidence + f.fix).find("bias_unused"), std::string::npos) << f.id << ": " << f.message;
}

// "bias": "drawn-unused" is validated like every field and written back as it was read.
TEST(Video, DrawnUnusedBiasOptionIsValidatedAndWrittenBack) {
  const mm::Config cfg = mm::load_preset("video-fix-tanh");
  const nlohmann::json j = cfg.to_json();
  EXPECT_EQ(j["model"]["layers"][0]["bias"], "drawn-unused");
  EXPECT_EQ(j["model"]["layers"][0]["bias_init"]["kind"], "normal");
  EXPECT_TRUE(mm::parse_config(j, "round trip").layers[0].bias_drawn_unused);
  auto error_of = [&](const nlohmann::json& layer) {
    nlohmann::json c = j;
    c["model"]["layers"][0] = layer;
    try {
      mm::parse_config(c, "my.json");
    } catch (const mm::Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(error_of({{"type", "linear"}, {"out", 200}, {"bias", "drawn"}}).find("my.json: model.layers[0].bias: must be"),
            std::string::npos);
  EXPECT_NE(error_of({{"type", "linear"}, {"out", 200}, {"bias", "drawn-unused"}, {"bias_init", {{"kind", "zeros"}}}})
                .find("my.json: model.layers[0].bias_init: draws nothing"),
            std::string::npos);
  // Without a bias_init the drawn bias is the video's torch.randn(n_hidden).
  nlohmann::json c = j;
  c["model"]["layers"][0] = {{"type", "linear"}, {"out", 200}, {"bias", "drawn-unused"}};
  EXPECT_EQ(mm::parse_config(c, "my.json").layers[0].bias_init.kind, mm::InitSpec::Kind::Normal);
}
