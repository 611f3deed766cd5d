// The layers and initializations beyond the lecture: LayerNorm, GroupNorm, ReLU, GELU and
// Residual against PyTorch (tests/data/torch/layers.json, written by tools/gen_layers_fixture.py),
// their config parsing and errors, Xavier against torch.nn.init and its statistics, and the
// LSUV data pass. Finite-difference gradient checks of these layers are in test_gradcheck.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "makemore/config.h"
#include "makemore/data.h"
#include "makemore/diag.h"
#include "makemore/error.h"
#include "makemore/layer_kinds.h"
#include "makemore/model.h"
#include "makemore/perf.h"
#include "makemore/presets.h"
#include "makemore/train.h"

namespace {

using mm::Mat;
using nlohmann::json;

json load_layers_fixture() {
  const std::string path = std::string(MM_TEST_DATA_DIR) + "/torch/layers.json";
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open " + path);
  return json::parse(in);
}

std::vector<float> floats(const json& t) {
  std::vector<float> v;
  for (const auto& x : t["data"]) v.push_back(static_cast<float>(x.get<double>()));
  return v;
}

// Float32 on both sides with different summation orders (we sum the statistics in double, torch
// in float): measured differences reach 4e-6 on O(1) values and 5e-5 on a weight gradient entry
// that is a cancelling sum of terms ~1. So the absolute part scales with the tensor's largest
// entry: 1e-4 of it; a wrong term would be off by far more.
void expect_close(const std::string& what, const float* actual, const std::vector<float>& expected, double atol_scale = 1e-4,
                  double rtol = 1e-4) {
  int bad = 0;
  double max_err = 0, max_abs = 1.0;
  for (float e : expected) max_abs = std::max(max_abs, std::abs(static_cast<double>(e)));
  const double atol = atol_scale * max_abs;
  for (std::size_t i = 0; i < expected.size(); ++i) {
    const double err = std::abs(static_cast<double>(actual[i]) - expected[i]);
    max_err = std::max(max_err, err);
    if (!(err <= atol + rtol * std::abs(static_cast<double>(expected[i]))) && ++bad <= 3)
      ADD_FAILURE() << what << "[" << i << "]: ours " << actual[i] << ", torch " << expected[i];
  }
  EXPECT_EQ(bad, 0) << what << ": " << bad << " of " << expected.size() << " differ (max abs err " << max_err << ")";
}

// A config whose first layer is `spec`, read by the same parser as a user's file: the input
// to the stack is block_size * n_embd = width features.
mm::Config config_with(const json& layers, int width = 12) {
  json j{{"model", {{"n_embd", width}, {"layers", layers}}}, {"data", {{"block_size", 1}}}};
  return mm::parse_config(j, "test.json");
}

mm::Config config_with_first(const json& spec, int width = 12) {
  return config_with(json::array({spec, {{"type", "linear"}, {"out", "vocab"}}}), width);
}

// ---- PyTorch reference ---------------------------------------------------------------------

TEST(LayersTorch, ForwardAndGradientsMatchEveryCase) {
  const json fx = load_layers_fixture();
  ASSERT_GE(fx["cases"].size(), 10u);
  for (const auto& c : fx["cases"]) {
    const std::string name = c["name"];
    SCOPED_TRACE(name);
    const mm::Config cfg = config_with_first(c["spec"]);
    mm::ParamStore store;
    auto layer = mm::make_layer(cfg.layers[0], 27, "model.layers[0]");
    const auto xs = floats(c["x"]);
    const int rows = c["x"]["shape"][0], cols = c["x"]["shape"][1];
    layer->build(1, cols, store, "layers.0.");
    store.finalize();
    std::size_t trainable = 0;
    for (const auto& p : store.infos()) trainable += p.trainable ? 1 : 0;
    ASSERT_EQ(trainable, c["params"].size()) << "parameter count differs from torch's";
    for (auto it = c["params"].begin(); it != c["params"].end(); ++it) {
      const int id = store.find(it.key());
      ASSERT_GE(id, 0) << "no parameter named " << it.key();
      const auto v = floats(it.value());
      ASSERT_EQ(v.size(), store.info(id).size()) << it.key();
      std::copy(v.begin(), v.end(), store.data(id));
    }
    Mat x = Eigen::Map<const Mat>(xs.data(), rows, cols);
    const auto rs = floats(c["R"]);
    const Mat R = Eigen::Map<const Mat>(rs.data(), rows, cols);
    for (mm::Mode mode : {mm::Mode::Train, mm::Mode::Eval}) {  // no batch statistics: the same
      layer->forward(x, mode);
      expect_close("out", layer->out().data(), floats(c["out"]));
      Mat dx;
      layer->backward(R, &dx);
      expect_close("dx", dx.data(), floats(c["dx"]));
      for (auto it = c["grads"].begin(); it != c["grads"].end(); ++it)
        expect_close("d" + it.key(), store.grad(store.find(it.key())), floats(it.value()));
    }
  }
}

// torch.nn.init.xavier_*_ on a (fan_in, fan_out) float tensor after torch.manual_seed(seed):
// the same bits from our generator (tensors of >= 16 elements; below that torch's normal_
// rounds once more, so those are compared to a float's precision).
TEST(LayersTorch, XavierDrawsMatchTorchInit) {
  const json fx = load_layers_fixture();
  ASSERT_EQ(fx["xavier"].size(), 4u);
  for (const auto& c : fx["xavier"]) {
    const std::string kind = c["kind"];
    const int fan_in = c["fan_in"], fan_out = c["fan_out"];
    SCOPED_TRACE(kind + " " + std::to_string(fan_in) + "x" + std::to_string(fan_out));
    const mm::InitSpec spec = mm::parse_init(json{{"kind", kind}, {"gain", c["gain"]}}, "weight_init");
    mm::TorchGenerator gen(c["seed"].get<uint64_t>());
    std::vector<float> w(static_cast<std::size_t>(fan_in * fan_out));
    mm::init_fill(spec, fan_in, fan_in, fan_out, w.data(), gen);
    const auto expected = floats(c["w"]);
    if (kind == "xavier-uniform" || w.size() >= 16) {
      for (std::size_t i = 0; i < w.size(); ++i) EXPECT_EQ(w[i], expected[i]) << "entry " << i;
    } else {
      expect_close("w", w.data(), expected, 0, 1e-6);
    }
  }
}

// ---- statistics of the Xavier draws --------------------------------------------------------

TEST(Xavier, NormalAndUniformHaveTheirStdAndBound) {
  const int fan_in = 300, fan_out = 500;
  const std::size_t n = static_cast<std::size_t>(fan_in) * fan_out;
  struct Case {
    const char* kind;
    const char* gain;
    double gain_value;
  };
  for (const Case& c : {Case{"xavier-normal", "tanh", 5.0 / 3.0}, Case{"xavier-normal", "linear", 1.0},
                        Case{"xavier-uniform", "relu", std::sqrt(2.0)}, Case{"xavier-uniform", "0.5", 0.5}}) {
    SCOPED_TRACE(std::string(c.kind) + " gain " + c.gain);
    const mm::InitSpec spec = mm::parse_init(json{{"kind", c.kind}, {"gain", c.gain}}, "weight_init");
    std::vector<float> w(n);
    mm::TorchGenerator gen(123);
    mm::init_fill(spec, fan_in, fan_in, fan_out, w.data(), gen);
    const mm::Moments m = mm::moments(w.data(), n);
    const double sd = c.gain_value * std::sqrt(2.0 / (fan_in + fan_out));
    EXPECT_NEAR(m.mean, 0.0, 5.0 * sd / std::sqrt(static_cast<double>(n)));
    EXPECT_NEAR(m.std, sd, 0.01 * sd);  // 150k draws: the std's own error is ~0.2%
    if (std::string(c.kind) == "xavier-uniform") {
      const double a = std::sqrt(3.0) * sd;
      EXPECT_LE(m.max, a);
      EXPECT_GE(m.min, -a);
      EXPECT_GT(m.max, 0.999 * a);
      EXPECT_LT(m.min, -0.999 * a);
    } else {
      EXPECT_GT(m.max, 4.0 * sd);  // a normal's tails, not a bounded draw
    }
  }
}

TEST(Xavier, DefaultGainIsOneAsTorch) {
  const mm::InitSpec spec = mm::parse_init(json{{"kind", "xavier-normal"}}, "w");
  EXPECT_DOUBLE_EQ(mm::kaiming_gain(spec.gain), 1.0);
}

// ---- config ----------------------------------------------------------------------------------

std::string parse_error(const json& j) {
  try {
    mm::parse_config(j, "bad.json");
  } catch (const mm::Error& e) {
    return e.what();
  }
  return "(no error)";
}

json base_config(json layers) {
  return json{{"data", {{"block_size", 3}}}, {"model", {{"n_embd", 10}, {"layers", std::move(layers)}}}};
}

const json kVocabOut = {{"type", "linear"}, {"out", "vocab"}};

TEST(LayersConfig, BadGroupsNamesTheField) {
  const std::string e = parse_error(base_config({{{"type", "groupnorm"}, {"groups", 7}}, kVocabOut}));
  EXPECT_NE(e.find("bad.json: model.layers[0].groups: 30 features cannot be split into 7 equal groups"), std::string::npos) << e;
  const std::string z = parse_error(base_config({{{"type", "groupnorm"}, {"groups", 0}}, kVocabOut}));
  EXPECT_NE(z.find("model.layers[0].groups: must be between 1"), std::string::npos) << z;
  const std::string m = parse_error(base_config({{{"type", "groupnorm"}}, kVocabOut}));
  EXPECT_NE(m.find("model.layers[0].groups: missing"), std::string::npos) << m;
}

TEST(LayersConfig, ResidualWidthMismatchNamesTheBranch) {
  const json layers = {{{"type", "linear"}, {"out", 100}},
                       {{"type", "tanh"}},
                       {{"type", "layernorm"}},
                       {{"type", "residual"}, {"layers", {{{"type", "linear"}, {"out", 64}}}}},
                       kVocabOut};
  const std::string e = parse_error(base_config(layers));
  EXPECT_NE(e.find("bad.json: model.layers[3].layers: residual branch maps 100 features to 64; its output width must "
                   "equal its input (100)"),
            std::string::npos)
      << e;
}

TEST(LayersConfig, ResidualEndingAtTheVocabularyFailsWhenBuilt) {
  const json layers = {{{"type", "linear"}, {"out", 100}},
                       {{"type", "tanh"}},
                       {{"type", "layernorm"}},
                       {{"type", "residual"}, {"layers", {kVocabOut}}},
                       kVocabOut};
  const mm::Config cfg = mm::parse_config(base_config(layers), "ok.json");  // vocab unknown here
  try {
    mm::Model model(cfg, 27);
    ADD_FAILURE() << "built a residual mapping 100 features to 27";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(),
                 "model.layers[3].layers: residual branch maps 100 features to 27; its output width must "
                 "equal its input (100)");
  }
}

TEST(LayersConfig, UnknownFieldsAndValuesAreRejected) {
  struct Case {
    json layer;
    std::string expect;
  };
  const std::vector<Case> cases = {
      {{{"type", "layernorm"}, {"momentum", 0.1}}, "model.layers[0].momentum: unknown field"},
      {{{"type", "relu"}, {"inplace", true}}, "model.layers[0].inplace: unknown field"},
      {{{"type", "gelu"}, {"approximate", "fast"}}, "model.layers[0].approximate: must be \"none\""},
      {{{"type", "residual"}, {"layers", json::array()}}, "model.layers[0].layers: must be a non-empty list"},
      {{{"type", "residual"}, {"layers", {{{"type", "tahn"}}}}}, "model.layers[0].layers[0].type: unknown layer 'tahn'"},
      {{{"type", "residual"}, {"layers", {{{"type", "layernorm"}, {"bogus", 1}}}}},
       "model.layers[0].layers[0].bogus: unknown field"},
      {{{"type", "layernorm"}, {"affine", false}, {"gamma_init", "ones"}},
       "model.layers[0].gamma_init: given for a layer with \"affine\": false"},
      {{{"type", "linear"}, {"out", 30}, {"bias_init", {{"kind", "xavier-normal"}}}},
       "model.layers[0].bias_init.kind: xavier-normal needs a weight matrix"},
      {{{"type", "layernorm"}, {"gamma_init", "lsuv"}}, "model.layers[0].gamma_init.kind: lsuv is only for a linear layer's"},
      {{{"type", "linear"}, {"out", 30}, {"weight_init", {{"kind", "lsuv"}, {"gain", "tanh"}}}},
       "model.layers[0].weight_init.gain: only for kind kaiming, xavier"},
      {{{"type", "linear"}, {"out", 30}, {"weight_init", {{"kind", "kaiming"}, {"tol", 0.1}}}},
       "model.layers[0].weight_init.tol: only for kind lsuv"},
      {{{"type", "linear"}, {"out", 30}, {"weight_init", {{"kind", "xavier-uniform"}, {"gain", "tahn"}}}},
       "model.layers[0].weight_init.gain: unknown Kaiming gain 'tahn'"},
      {{{"type", "relux"}}, "model.layers[0].type: unknown layer 'relux'; use " + mm::layer_kind_names()},
      {{{"type", "linear"}, {"out", 30}, {"weight_init", {{"kind", "constant"}}}},
       "model.layers[0].weight_init.value: missing; kind constant needs"},
      {{{"type", "linear"}, {"out", 30}, {"bias_init", {{"kind", "zeros"}, {"scale", 3}}}},
       "model.layers[0].bias_init.scale: has no effect on zeros"},
      {{{"type", "layernorm"}, {"gamma_init", "kaiming"}}, "model.layers[0].gamma_init.kind: kaiming scales by a layer's fan_in"},
      {{{"type", "groupnorm"}, {"groups", 2}, {"beta_init", "torch-default"}},
       "model.layers[0].beta_init.kind: torch-default scales by"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.layer.dump());
    const std::string e = parse_error(base_config({c.layer, kVocabOut}));
    EXPECT_NE(e.find(c.expect), std::string::npos) << e;
    EXPECT_EQ(e.find('\n'), std::string::npos) << "one line";
  }
  // Nothing but batchnorm1d after the logits.
  const std::string after = parse_error(base_config({kVocabOut, {{"type", "layernorm"}}}));
  EXPECT_NE(after.find("model.layers[1]: only batchnorm1d may follow the output linear layer"), std::string::npos) << after;
}

// A stack that starts with a flatten gets the context as block_size positions of n_embd: the
// flattens must bring it down to one position before the logits, in divisors of what is left.
TEST(LayersConfig, LeadingFlattenTakesTheContextAsASequence) {
  const json flat2 = {{"type", "flatten"}, {"n", 2}};
  const json lin = {{"type", "linear"}, {"out", 16}};
  json wavenet = base_config({flat2, lin, flat2, lin, flat2, lin, kVocabOut});
  wavenet["data"]["block_size"] = 8;
  EXPECT_EQ(parse_error(wavenet), "(no error)");
  json short_of_one = base_config({flat2, lin, flat2, lin, kVocabOut});  // 8 -> 4 -> 2
  short_of_one["data"]["block_size"] = 8;
  const std::string e = parse_error(short_of_one);
  EXPECT_NE(e.find("model.layers: the layers leave 2 positions per example at the output"), std::string::npos) << e;
  json three = base_config({{{"type", "flatten"}, {"n", 3}}, lin, kVocabOut});
  three["data"]["block_size"] = 8;
  const std::string d = parse_error(three);
  EXPECT_NE(d.find("model.layers[0].n: the time length 8 is not divisible by 3"), std::string::npos) << d;
  // Without n a leading flatten merges the whole context: the lecture's emb.view(B, -1).
  EXPECT_EQ(parse_error(base_config({{{"type", "flatten"}}, lin, kVocabOut})), "(no error)");
}

// Residual blocks nested thousands deep overflowed the stack (a segfault): refused by name.
TEST(LayersConfig, ResidualNestingIsBounded) {
  auto nested = [](int depth) {  // built inside out, moving (not copying) what is already built
    json block = {{"type", "tanh"}};
    for (int i = 0; i < depth; ++i) {
      json outer = {{"type", "residual"}, {"layers", json::array()}};
      outer["layers"].push_back(std::move(block));
      block = std::move(outer);
    }
    return block;
  };
  EXPECT_EQ(parse_error(base_config({{{"type", "linear"}, {"out", 8}}, nested(64), kVocabOut})), "(no error)");
  // 2000 levels: far past the bound, and within what the test's own (recursive) json copies may
  // nest on an ASan build's 8 MiB stack (10000 overflowed there, in nlohmann's copy constructor).
  const std::string e = parse_error(base_config({{{"type", "linear"}, {"out", 8}}, nested(2000), kVocabOut}));
  EXPECT_NE(e.find("residual blocks nested more than 64 deep"), std::string::npos) << e.substr(0, 300);
  EXPECT_EQ(e.find('\n'), std::string::npos);
}

TEST(LayersConfig, RoundTripsThroughToJson) {
  const json layers = {
      {{"type", "linear"}, {"out", 64}, {"weight_init", {{"kind", "xavier-uniform"}, {"gain", "tanh"}}}},
      {{"type", "layernorm"}, {"eps", 1e-3}},
      {{"type", "residual"},
       {"layers",
        {{{"type", "linear"}, {"out", 64}, {"bias", false}, {"weight_init", {{"kind", "lsuv"}, {"batch", 256}, {"tol", 0.05}}}},
         {{"type", "groupnorm"}, {"groups", 8}, {"affine", false}},
         {{"type", "gelu"}, {"approximate", "tanh"}},
         {{"type", "residual"},
          {"layers", {{{"type", "relu"}}, {{"type", "linear"}, {"out", 64}, {"weight_init", "xavier-normal"}}}}}}}},
      {{"type", "gelu"}},
      kVocabOut};
  const mm::Config a = mm::parse_config(base_config(layers), "a.json");
  const json ja = a.to_json();
  const mm::Config b = mm::parse_config(ja, "b.json");
  EXPECT_EQ(b.to_json(), ja);
  const json& r = ja["model"]["layers"][2];
  EXPECT_EQ(r["layers"][0]["weight_init"]["kind"], "lsuv");
  EXPECT_EQ(r["layers"][0]["weight_init"]["batch"], 256);
  EXPECT_EQ(r["layers"][1]["groups"], 8);
  EXPECT_EQ(r["layers"][1]["affine"], false);
  EXPECT_EQ(r["layers"][2]["approximate"], "tanh");
  EXPECT_EQ(r["layers"][3]["layers"][1]["weight_init"]["kind"], "xavier-normal");
  EXPECT_EQ(ja["model"]["layers"][0]["weight_init"]["gain"], "tanh");
  // Parameter names nest as the config does.
  mm::Model model(b, 27);
  for (const char* name :
       {"layers.1.gamma", "layers.2.layers.0.weight", "layers.2.layers.3.layers.1.weight", "layers.2.layers.3.layers.1.bias"})
    EXPECT_GE(model.params().find(name), 0) << name;
  EXPECT_LT(model.params().find("layers.2.layers.1.gamma"), 0) << "affine false has no gamma";
}

// ---- LSUV ------------------------------------------------------------------------------------

// A few hundred made-up words: real examples for the data pass without data/names.txt.
mm::Splits synthetic_splits(const mm::Vocab** vocab_out, int block_size) {
  static std::vector<std::u32string> words;
  static mm::Vocab vocab;
  if (words.empty()) {
    std::mt19937 rng(5);
    std::uniform_int_distribution<int> len(3, 8), ch(0, 25);
    for (int i = 0; i < 400; ++i) {
      std::u32string w;
      for (int k = len(rng); k > 0; --k) w += static_cast<char32_t>(U'a' + ch(rng) % (k % 2 ? 26 : 6));
      words.push_back(w);
    }
    vocab = mm::Vocab::from_words(words);
  }
  *vocab_out = &vocab;
  return mm::make_splits(words, vocab, block_size, 42);
}

json lsuv_config(uint64_t seed) {
  const json lsuv = {{"kind", "lsuv"}};
  json layers = json::array();
  layers.push_back({{"type", "linear"}, {"out", 64}, {"weight_init", lsuv}});
  layers.push_back({{"type", "tanh"}});
  layers.push_back({{"type", "residual"},
                    {"layers",
                     {{{"type", "linear"}, {"out", 64}, {"bias", false}, {"weight_init", lsuv}},
                      {{"type", "batchnorm1d"}},
                      {{"type", "tanh"}}}}});
  layers.push_back({{"type", "linear"}, {"out", 64}, {"weight_init", {{"kind", "lsuv"}, {"tol", 0.01}}}});
  layers.push_back({{"type", "relu"}});
  layers.push_back({{"type", "linear"}, {"out", "vocab"}, {"weight_init", {{"kind", "normal"}, {"scale", 0.01}}}});
  json j = base_config(layers);
  j["train"] = {{"seed", seed}, {"steps", 30}, {"batch_size", 16}};
  return j;
}

// The variance of each LSUV layer's output, recomputed here on the batch the pass drew.
TEST(Lsuv, EveryLayerEndsWithUnitOutputVariance) {
  const mm::Vocab* vocab = nullptr;
  const mm::Splits splits = synthetic_splits(&vocab, 3);
  const mm::Config cfg = mm::parse_config(lsuv_config(11), "lsuv.json");
  mm::Model model(cfg, vocab->size());
  ASSERT_TRUE(model.has_lsuv());
  mm::TorchGenerator gen(cfg.seed);
  model.init(gen);
  mm::TorchGenerator batch_gen = gen;  // the pass's batch is the next draw
  const mm::FloatBuf running = model.params().buffers();
  const auto report = model.lsuv(splits.train, gen);
  ASSERT_EQ(report.size(), 3u);
  EXPECT_EQ(report[0].weight, "layers.0.weight");
  EXPECT_EQ(report[1].weight, "layers.2.layers.0.weight");
  EXPECT_EQ(report[2].weight, "layers.3.weight");
  EXPECT_EQ(model.params().buffers(), running) << "BatchNorm running statistics must be restored";

  std::vector<int64_t> ix(512);
  batch_gen.randint(0, static_cast<int64_t>(splits.train.size()), ix.data(), ix.size());
  std::vector<int32_t> xb;
  for (int64_t r : ix)
    for (int t = 0; t < 3; ++t) xb.push_back(splits.train.x[static_cast<std::size_t>(r) * 3 + t]);
  model.forward(xb.data(), 512, mm::Mode::Train);
  model.params().buffers() = running;
  const auto layers = model.all_layers();
  const double tol[] = {0.1, 0.1, 0.01};
  std::size_t k = 0;
  for (mm::Layer* l : layers) {
    if (!dynamic_cast<const mm::Linear*>(l) || model.params().info(l->param_ids()[0]).init.kind != mm::InitSpec::Kind::Lsuv)
      continue;
    const mm::Moments m = mm::moments(l->out().data(), static_cast<std::size_t>(l->out().size()));
    const double var = m.std * m.std;
    SCOPED_TRACE(report[k].weight);
    EXPECT_NEAR(var, 1.0, tol[k] + 0.01) << "unbiased vs biased variance over 32k entries differ by < 1e-4";
    EXPECT_NEAR(report[k].variance, var, 1e-3);
    EXPECT_LT(std::abs(report[k].variance - 1.0), tol[k]);
    ++k;
  }
  EXPECT_EQ(k, 3u);
}

TEST(Lsuv, TrainingIsDeterministicPerSeed) {
  const mm::Vocab* vocab = nullptr;
  const mm::Splits splits = synthetic_splits(&vocab, 3);
  auto train = [&](uint64_t seed) {
    const mm::Config cfg = mm::parse_config(lsuv_config(seed), "lsuv.json");
    mm::Model model(cfg, vocab->size());
    const mm::TrainOutcome out = mm::train_and_evaluate(model, cfg, splits, {});
    EXPECT_FALSE(out.stats.diverged);
    return std::make_pair(model.params().values(), out.losses.val);
  };
  const auto a = train(3), b = train(3), c = train(4);
  EXPECT_EQ(a.first, b.first);
  EXPECT_EQ(a.second, b.second);
  EXPECT_NE(a.first, c.first);
  // train_and_evaluate did run the pass: the first layer's weight std is not 1/sqrt(fan_in).
  const mm::Config cfg = mm::parse_config(lsuv_config(3), "lsuv.json");
  mm::Model plain(cfg, vocab->size());
  mm::TorchGenerator gen(3);
  plain.init(gen);
  mm::Model data(cfg, vocab->size());
  mm::TorchGenerator gen2(3);
  data.init(gen2, splits.train);
  const int w = plain.params().find("layers.0.weight");
  const std::size_t n = plain.params().info(w).size();
  const double s_plain = mm::moments(plain.params().data(w), n).std, s_data = mm::moments(data.params().data(w), n).std;
  EXPECT_NEAR(s_plain, 1.0 / std::sqrt(30.0), 0.01);
  EXPECT_GT(std::abs(s_data / s_plain - 1.0), 0.05) << "the data pass rescaled nothing";
}

// ---- diagnostics and calibration with a residual block -------------------------------------

TEST(LayersModel, InspectTreatsAResidualBlockAsOneLayer) {
  const mm::Vocab* vocab = nullptr;
  const mm::Splits splits = synthetic_splits(&vocab, 3);
  const json layers = {
      {{"type", "linear"}, {"out", 32}, {"weight_init", {{"kind", "kaiming"}}}},
      {{"type", "tanh"}},
      {{"type", "residual"}, {"layers", {{{"type", "layernorm"}}, {{"type", "linear"}, {"out", 32}}, {{"type", "tanh"}}}}},
      {{"type", "tanh"}},
      kVocabOut};
  json j = base_config(layers);
  j["train"] = {{"batch_size", 16}};
  const mm::Config cfg = mm::parse_config(j, "res.json");
  const mm::Diagnosis r = mm::inspect_training(cfg, splits, vocab->size(), 5);
  ASSERT_EQ(r.snapshot.layers.size(), 5u);
  EXPECT_EQ(r.snapshot.layers[2].type, "Residual");
  EXPECT_TRUE(r.snapshot.layers[2].has_grad);
  EXPECT_EQ(r.snapshot.layers[3].type, "Tanh");
  EXPECT_TRUE(r.snapshot.layers[3].has_pre);
  bool nested_param = false;
  for (const auto& p : r.snapshot.params) nested_param |= p.name == "layers.2.layers.1.weight";
  EXPECT_TRUE(nested_param);
  EXPECT_FALSE(mm::format_diagnosis(r).empty());
}

TEST(LayersModel, CalibrateReachesABatchNormInsideAResidual) {
  const mm::Vocab* vocab = nullptr;
  const mm::Splits splits = synthetic_splits(&vocab, 3);
  const json layers = {{{"type", "linear"}, {"out", 16}},
                       {{"type", "residual"}, {"layers", {{{"type", "linear"}, {"out", 16}}, {{"type", "batchnorm1d"}}}}},
                       kVocabOut};
  const mm::Config cfg = mm::parse_config(base_config(layers), "cal.json");
  mm::Model model(cfg, vocab->size());
  mm::TorchGenerator gen(1);
  model.init(gen);
  model.calibrate(splits.train, 100);
  // Expected: the statistics of the nested Linear's output over the whole split, in double.
  model.forward(splits.train.x.data(), static_cast<int>(splits.train.size()), mm::Mode::Eval);
  const auto* res = static_cast<mm::Residual*>(model.stack().layers()[1].get());
  const Mat& h = res->branch().layers()[0]->out();
  const float* mean = model.params().data(model.params().find("layers.1.layers.1.running_mean"));
  const float* var = model.params().data(model.params().find("layers.1.layers.1.running_var"));
  for (Eigen::Index c = 0; c < h.cols(); ++c) {
    double s = 0, ss = 0;
    for (Eigen::Index r = 0; r < h.rows(); ++r) s += h(r, c);
    const double mu = s / static_cast<double>(h.rows());
    for (Eigen::Index r = 0; r < h.rows(); ++r) ss += (h(r, c) - mu) * (h(r, c) - mu);
    EXPECT_NEAR(mean[c], mu, 1e-5);
    EXPECT_NEAR(var[c], ss / static_cast<double>(h.rows() - 1), 1e-4 * (1 + ss / static_cast<double>(h.rows())));
  }
}

// ---- dropout ---------------------------------------------------------------------------------

// In training each unit is 0 or x / (1 - p), dropped with probability ~p, its mask the next
// rows * cols torch.rand values of the generator passed in; in evaluation it is the identity.
TEST(Dropout, InvertedScalingFromTheGivenGeneratorAndIdentityInEval) {
  const mm::Config cfg = config_with_first({{"type", "dropout"}, {"p", 0.25}});
  mm::ParamStore store;
  auto layer = mm::make_layer(cfg.layers[0], 27, "model.layers[0]");
  layer->build(1, 40, store, "layers.0.");
  store.finalize();
  std::mt19937 rng(41);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  Mat x(50, 40);
  for (Eigen::Index i = 0; i < x.size(); ++i) x.data()[i] = nd(rng);
  mm::TorchGenerator gen(7), expect_gen(7);
  layer->forward(x, mm::ForwardContext(mm::Mode::Train, &gen));
  std::vector<float> u(static_cast<std::size_t>(x.size()));
  expect_gen.rand(u.data(), u.size());
  EXPECT_EQ(gen.state(), expect_gen.state()) << "one draw per unit, from the context's generator";
  const float scale = 1.0f / 0.75f;
  int dropped = 0;
  for (Eigen::Index i = 0; i < x.size(); ++i) {
    const float o = layer->out().data()[i];
    const bool keep = u[static_cast<std::size_t>(i)] < 0.75f;
    ASSERT_EQ(o, keep ? x.data()[i] * scale : 0.0f) << i;
    dropped += keep ? 0 : 1;
  }
  // 2,000 units, p = 0.25: 500 expected, std 19.4; 5 std either side
  EXPECT_NEAR(dropped, 500, 97);
  Mat dx;
  layer->backward(Mat::Ones(x.rows(), x.cols()), &dx);
  for (Eigen::Index i = 0; i < x.size(); ++i) EXPECT_EQ(dx.data()[i], layer->out().data()[i] == 0.0f ? 0.0f : scale);

  mm::TorchGenerator untouched(7);
  layer->forward(x, mm::ForwardContext(mm::Mode::Eval, &untouched));
  EXPECT_TRUE(layer->out() == x);
  EXPECT_EQ(untouched.state(), mm::TorchGenerator(7).state()) << "evaluation draws nothing";
}

// The mask comes from the run's generator: a seed fixes the whole training, and dropout does
// change it (the same network with p = 0 draws nothing and trains differently).
TEST(Dropout, TheSeedDeterminesATrainingRun) {
  const mm::Vocab* vocab = nullptr;
  const mm::Splits splits = synthetic_splits(&vocab, 3);
  auto losses = [&](double p, uint64_t seed) {
    const json layers = {{{"type", "linear"}, {"out", 32}}, {{"type", "tanh"}}, {{"type", "dropout"}, {"p", p}}, kVocabOut};
    json j = base_config(layers);
    j["train"] = {{"batch_size", 16}, {"steps", 20}, {"seed", seed}};
    const mm::Config cfg = mm::parse_config(j, "dropout.json");
    mm::Model model(cfg, vocab->size());
    mm::TorchGenerator gen(cfg.seed);
    model.init(gen);
    mm::Trainer trainer(model, cfg, splits.train, gen);
    std::vector<float> out;
    for (int64_t i = 0; i < cfg.steps; ++i) out.push_back(trainer.step(i));
    return out;
  };
  EXPECT_EQ(losses(0.5, 3), losses(0.5, 3));
  EXPECT_NE(losses(0.5, 3), losses(0.5, 4));
  EXPECT_NE(losses(0.5, 3), losses(0.0, 3));
}

TEST(Dropout, ConfigRefusesAProbabilityOfOneOrMore) {
  for (const double p : {1.0, 1.5, -0.1}) {
    SCOPED_TRACE(p);
    try {
      config_with_first({{"type", "dropout"}, {"p", p}});
      ADD_FAILURE() << "accepted";
    } catch (const mm::Error& e) {
      EXPECT_NE(std::string(e.what()).find("test.json: model.layers[0].p: must be"), std::string::npos) << e.what();
    }
  }
  const mm::Config cfg = config_with_first({{"type", "dropout"}});
  EXPECT_EQ(cfg.layers[0].dropout_p, 0.5);  // torch's default
  EXPECT_EQ(mm::parse_config(cfg.to_json(), "again").to_json(), cfg.to_json());
}

}  // namespace

// outputs_finite() leaves out a Linear's output when a normalization reads it next (and tanh's
// outputs): what it relies on is that every norm turns a non-finite input into a non-finite
// output, in training and in evaluation, alone or inside a residual block. A Linear whose weights
// overflow its output to inf must still make the check fail; the same model with sane weights
// passes it.
TEST(Model, OutputsFiniteSeesAnOverflowThatANormReads) {
  const json norms = json::array({nullptr,  // no norm: a tanh would squash the inf to 1
                                  {{"type", "batchnorm1d"}},
                                  {{"type", "layernorm"}, {"affine", false}},
                                  {{"type", "layernorm"}},
                                  {{"type", "groupnorm"}, {"groups", 4}}});
  for (const json& norm : norms)
    for (const bool residual : {false, true}) {
      SCOPED_TRACE(norm.dump() + (residual ? " in a residual block" : ""));
      json inner = json::array({{{"type", "linear"}, {"out", 16}}});
      if (!norm.is_null()) inner.push_back(norm);
      inner.push_back({{"type", "tanh"}});
      json layers = json::array({{{"type", "linear"}, {"out", 16}}, {{"type", "tanh"}}});
      if (residual)
        layers.push_back({{"type", "residual"}, {"layers", inner}});
      else
        for (const json& l : inner) layers.push_back(l);
      layers.push_back({{"type", "linear"}, {"out", "vocab"}});
      const json j = {{"data", {{"block_size", 3}}}, {"model", {{"n_embd", 4}, {"layers", layers}}}};
      mm::Model model(mm::parse_config(j, "test"), 27);
      mm::TorchGenerator gen(1);
      model.init(gen);
      std::vector<int32_t> x(8 * 3);
      for (std::size_t i = 0; i < x.size(); ++i) x[i] = static_cast<int32_t>(i % 27);
      for (const mm::Mode mode : {mm::Mode::Train, mm::Mode::Eval}) {
        model.forward(x.data(), 8, mode);
        EXPECT_TRUE(model.outputs_finite());
      }
      const std::string weight = residual ? "layers.2.layers.0.weight" : "layers.2.weight";
      const int id = model.params().find(weight);
      ASSERT_GE(id, 0) << weight;
      for (int k = 0; k < 16 * 16; ++k) model.params().data(id)[k] = 3e38f;  // 16 terms of ~1e38 each: inf
      for (const mm::Mode mode : {mm::Mode::Train, mm::Mode::Eval}) {
        model.forward(x.data(), 8, mode);
        EXPECT_FALSE(model.outputs_finite()) << (mode == mm::Mode::Train ? "train" : "eval");
      }
    }
}

// outputs_finite() reads neither a flatten's output (it only moves its input's numbers) nor a
// tanh's input (Tanh checks it while its forward reads it): an infinity out of any Linear,
// wherever it sits between flattens and tanhs (which squash it to 1), still fails the check, in
// training and in evaluation.
TEST(Model, OutputsFiniteSeesAnOverflowThroughFlattensAndTanhs) {
  const json layers = json::array({{{"type", "flatten"}, {"n", 2}},
                                   {{"type", "linear"}, {"out", 16}},
                                   {{"type", "flatten"}, {"n", 2}},
                                   {{"type", "tanh"}},
                                   {{"type", "linear"}, {"out", 16}},
                                   {{"type", "tanh"}},
                                   {{"type", "flatten"}, {"n", 2}},
                                   {{"type", "linear"}, {"out", 16}},
                                   {{"type", "tanh"}},
                                   {{"type", "linear"}, {"out", "vocab"}}});
  const json j = {{"data", {{"block_size", 8}}}, {"model", {{"n_embd", 4}, {"layers", layers}}}};
  std::vector<int32_t> x(8 * 8);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = static_cast<int32_t>(i % 27);
  for (const char* bias : {"layers.1.bias", "layers.4.bias", "layers.7.bias", "layers.9.bias"}) {
    SCOPED_TRACE(bias);
    mm::Model model(mm::parse_config(j, "test"), 27);
    mm::TorchGenerator gen(1);
    model.init(gen);
    for (const mm::Mode mode : {mm::Mode::Train, mm::Mode::Eval}) {
      model.forward(x.data(), 8, mode);
      EXPECT_TRUE(model.outputs_finite());
    }
    const int id = model.params().find(bias);
    ASSERT_GE(id, 0);
    std::fill_n(model.params().data(id), model.params().info(id).size(), std::numeric_limits<float>::infinity());
    for (const mm::Mode mode : {mm::Mode::Train, mm::Mode::Eval}) {
      model.forward(x.data(), 8, mode);
      EXPECT_FALSE(model.outputs_finite()) << (mode == mm::Mode::Train ? "train" : "eval");
    }
  }
}

// Scratch outputs (ForwardContext::scratch_outputs): a training forward writes the outputs that only
// the next layer's forward reads (a Linear's or a norm's read by a norm or a tanh) into two
// shared buffers, at the top level and inside a residual block, and keeps every other output in
// the layer's own; the logits, the loss and the finiteness verdict are the same to the bit, and
// the next forward without it gives every layer its own output again.
TEST(Model, ScratchOutputsKeepWhatTheBackwardAndTheLossRead) {
  const json branch = json::array({{{"type", "linear"}, {"out", 16}}, {{"type", "layernorm"}}, {{"type", "tanh"}}});
  const json layers = json::array({{{"type", "linear"}, {"out", 16}},
                                   {{"type", "batchnorm1d"}},
                                   {{"type", "tanh"}},
                                   {{"type", "linear"}, {"out", 16}},
                                   {{"type", "tanh"}},
                                   {{"type", "residual"}, {"layers", branch}},
                                   {{"type", "linear"}, {"out", "vocab"}}});
  const json j = {{"data", {{"block_size", 3}}}, {"model", {{"n_embd", 4}, {"layers", layers}}}};
  mm::Model plain(mm::parse_config(j, "test"), 27), scratch(mm::parse_config(j, "test"), 27);
  mm::TorchGenerator g1(1), g2(1);
  plain.init(g1);
  scratch.init(g2);
  std::vector<int32_t> x(8 * 3), y(8);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = static_cast<int32_t>(i % 27);
  for (std::size_t i = 0; i < y.size(); ++i) y[i] = static_cast<int32_t>((i * 5) % 27);
  plain.forward(x.data(), 8, mm::Mode::Train);
  mm::ForwardContext lend(mm::Mode::Train);
  lend.scratch_outputs = true;
  scratch.forward(x.data(), 8, lend);  // the first: each output its own (the sizes not known yet)
  EXPECT_NE(&scratch.stack().layers()[1]->out(), &scratch.stack().layers()[3]->out());
  scratch.forward(x.data(), 8, lend);
  EXPECT_TRUE(plain.logits() == scratch.logits());
  EXPECT_EQ(plain.loss(y.data()), scratch.loss(y.data()));
  EXPECT_TRUE(scratch.outputs_finite());
  const auto& sl = scratch.stack().layers();
  const auto& pl = plain.stack().layers();
  // Layers 0 (Linear, read by BatchNorm) and 1 (BatchNorm, read by Tanh) share the two buffers
  // with layer 3 (Linear, read by Tanh): 1 and 3 take the same one.
  EXPECT_EQ(&sl[1]->out(), &sl[3]->out());
  EXPECT_NE(&sl[0]->out(), &sl[1]->out());
  for (std::size_t i : {2u, 4u, 5u, 6u}) EXPECT_TRUE(sl[i]->out() == pl[i]->out()) << "layer " << i;  // kept: its own
  const auto& rb = dynamic_cast<const mm::Residual&>(*sl[5]).branch().layers();
  EXPECT_NE(&rb[0]->out(), &rb[1]->out());  // the branch's Linear and LayerNorm: its two buffers
  EXPECT_TRUE(rb[2]->out() == dynamic_cast<const mm::Residual&>(*pl[5]).branch().layers()[2]->out());
  scratch.forward(x.data(), 8, mm::Mode::Train);  // the default: every output its layer's own
  for (std::size_t i = 0; i < sl.size(); ++i) EXPECT_TRUE(sl[i]->out() == pl[i]->out()) << "layer " << i;
  EXPECT_NE(&sl[1]->out(), &sl[3]->out());
}

// A wavenet's layers differ in output size (its flattens): each transient output has a scratch
// matrix of its own size (one per size in each of the two sets), which no later layer resizes,
// so each finds the same allocation every step, never a reallocation.
TEST(Model, ScratchOutputsKeepTheirAllocationFromStepToStep) {
  mm::Model model(mm::load_preset("wavenet"), 27), plain(mm::load_preset("wavenet"), 27);
  mm::TorchGenerator g(3), g2(3);
  model.init(g);
  plain.init(g2);
  std::vector<int32_t> x(32 * 8);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = static_cast<int32_t>((i * 7) % 27);
  mm::ForwardContext lend(mm::Mode::Train);
  lend.scratch_outputs = true;
  const auto& layers = model.stack().layers();
  auto data_of = [&] {
    std::vector<const float*> d;
    for (const auto& l : layers) d.push_back(l->out().data());
    return d;
  };
  plain.forward(x.data(), 32, mm::Mode::Train);
  model.forward(x.data(), 32, lend);
  model.forward(x.data(), 32, lend);
  const std::vector<const float*> second = data_of();
  for (std::size_t i = 0; i < layers.size(); ++i)
    EXPECT_EQ(layers[i]->out().size(), plain.stack().layers()[i]->out().size()) << "layer " << i;
  for (int step = 0; step < 3; ++step) {
    model.forward(x.data(), 32, lend);
    EXPECT_EQ(data_of(), second) << "step " << step;
  }
}

// A residual block whose branch ends in tanh is not checked: x + tanh(..) is finite whenever x
// is, even at the largest float (the sum rounds back to it), and a non-finite x is the checked
// output of the layer before.
TEST(Model, OutputsFiniteLeavesABoundedResidualSumToItsInput) {
  const json branch = json::array({{{"type", "linear"}, {"out", 16}}, {{"type", "tanh"}}});
  const json layers = json::array({{{"type", "linear"}, {"out", 16}},
                                   {{"type", "residual"}, {"layers", branch}},
                                   {{"type", "residual"}, {"layers", branch}},
                                   {{"type", "linear"}, {"out", "vocab"}}});
  const json j = {{"data", {{"block_size", 3}}}, {"model", {{"n_embd", 4}, {"layers", layers}}}};
  mm::Model model(mm::parse_config(j, "test"), 27);
  mm::TorchGenerator gen(1);
  model.init(gen);
  auto fill = [&](const std::string& name, float v) {
    const int id = model.params().find(name);
    ASSERT_GE(id, 0) << name;
    std::fill_n(model.params().data(id), model.params().info(id).size(), v);
  };
  // x = the largest float in every unit; each branch adds tanh(+-5), the output layer reads 0s.
  fill("layers.0.weight", 0.0f);
  fill("layers.0.bias", std::numeric_limits<float>::max());
  for (const char* b : {"layers.1.layers.0.", "layers.2.layers.0."}) {
    fill(std::string(b) + "weight", 0.0f);
    fill(std::string(b) + "bias", b[7] == '1' ? 5.0f : -5.0f);
  }
  fill("layers.3.weight", 0.0f);
  std::vector<int32_t> x(8 * 3, 1);
  for (const mm::Mode mode : {mm::Mode::Train, mm::Mode::Eval}) {
    model.forward(x.data(), 8, mode);
    EXPECT_TRUE(model.outputs_finite());
    for (const auto& l : model.stack().layers()) EXPECT_TRUE(l->out().array().isFinite().all()) << l->describe();
  }
  fill("layers.0.bias", std::numeric_limits<float>::infinity());
  model.forward(x.data(), 8, mm::Mode::Train);
  EXPECT_FALSE(model.outputs_finite());
}

// The norm kernels take rows in blocks (8 at a time; on AVX-512 32 and 8, a row per vector lane,
// each lane running its row's sums in the row's order, a group's last K % 8 features through
// masked loads): the outputs and dx of 45 rows at once are, to the bit, those of each row alone
// (the one-row path). Widths 24 (K = 24, 8), 30 (K = 30, 10, 5) and 100 (deep-residual-layernorm's
// LayerNorm(100); K = 25, 5).
TEST(NormKernels, BlocksOfRowsGiveOneRowAtATimesBits) {
  struct Case {
    int block_size, n_embd, groups_a, groups_b;
  };
  for (const Case c : {Case{3, 8, 3, 3}, Case{3, 10, 3, 6}, Case{4, 25, 4, 20}}) {
    const json j = {{"data", {{"block_size", c.block_size}}},
                    {"model",
                     {{"n_embd", c.n_embd},
                      {"layers", json::array({{{"type", "layernorm"}},
                                              {{"type", "groupnorm"}, {"groups", c.groups_a}},
                                              {{"type", "layernorm"}, {"affine", false}},
                                              {{"type", "groupnorm"}, {"groups", c.groups_b}, {"affine", false}},
                                              {{"type", "linear"}, {"out", "vocab"}}})}}}};
    mm::Model model(mm::parse_config(j, "test"), 27);
    mm::TorchGenerator gen(5);
    model.init(gen);
    std::mt19937 rng(3);
    std::normal_distribution<float> nd;
    for (float& v : model.params().values()) v += 0.3f * nd(rng);  // gamma and beta away from 1 and 0
    const Eigen::Index C = c.block_size * c.n_embd;
    Mat x(45, C), dout(45, C);
    for (Eigen::Index i = 0; i < x.size(); ++i) {
      x.data()[i] = 3.0f * nd(rng) + 0.5f;
      dout.data()[i] = nd(rng);
    }
    const std::vector<mm::Layer*> layers = model.all_layers();
    const std::string saved = mm::kernel_set();
    for (const std::string& set : mm::kernel_sets())
      for (int k = 0; k < 4; ++k) {
        mm::set_kernel_set(set);
        mm::Layer& layer = *layers[static_cast<std::size_t>(k)];
        SCOPED_TRACE(set + ", width " + std::to_string(C) + ": " + layer.describe());
        layer.forward(x, mm::Mode::Train);
        const Mat out = layer.out();
        Mat dx;
        layer.backward(dout, &dx);
        for (Eigen::Index r = 0; r < x.rows(); ++r) {
          const Mat xr = x.row(r), dr = dout.row(r);
          layer.forward(xr, mm::Mode::Train);
          ASSERT_EQ(0, std::memcmp(layer.out().data(), out.row(r).data(), sizeof(float) * static_cast<std::size_t>(C)))
              << "forward, row " << r;
          Mat dxr;
          layer.backward(dr, &dxr);
          ASSERT_EQ(0, std::memcmp(dxr.data(), dx.row(r).data(), sizeof(float) * static_cast<std::size_t>(C))) << "dx, row " << r;
        }
      }
    mm::set_kernel_set(saved);
  }
}
