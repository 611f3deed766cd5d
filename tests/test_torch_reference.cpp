// Compares one training step against PyTorch: tests/data/torch/*.json (written by
// tools/gen_torch_fixture.py from the lecture's own code) hold parameters, a batch, and
// torch's logits, loss, gradients, BatchNorm running statistics and post-SGD parameters.
// The model is built from the named preset (hidden width reduced as the fixture says, to keep
// the files small), loaded with the fixture's parameters, and stepped here. No PyTorch needed.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "makemore/layer_kinds.h"
#include "makemore/model.h"
#include "makemore/presets.h"

namespace {

using nlohmann::json;

// Float32 on both sides but different summation orders (Eigen vs torch's BLAS): measured
// differences are at most 5e-7 (logits) and 1e-7 (gradients, which are ~1e-2 here, so the
// absolute part is kept well below them); a wrong term would be off by far more.
constexpr double kAtol = 1e-6;
constexpr double kRtol = 1e-4;

json load_fixture(const std::string& name) {
  const std::string path = std::string(MM_TEST_DATA_DIR) + "/torch/" + name + ".json";
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open " + path);
  return json::parse(in);
}

std::vector<float> floats(const json& tensor) {
  std::vector<float> v;
  v.reserve(tensor["data"].size());
  for (const auto& x : tensor["data"]) v.push_back(static_cast<float>(x.get<double>()));
  return v;
}

// Counts and reports (the first few) entries outside atol + rtol * |expected|.
void expect_close(const std::string& what, const float* actual, const std::vector<float>& expected) {
  int bad = 0;
  double max_err = 0;
  for (std::size_t i = 0; i < expected.size(); ++i) {
    const double a = actual[i], e = expected[i];
    const double err = std::abs(a - e);
    max_err = std::max(max_err, err);
    if (!(err <= kAtol + kRtol * std::abs(e))) {
      if (++bad <= 3) ADD_FAILURE() << what << "[" << i << "]: ours " << a << ", torch " << e;
    }
  }
  EXPECT_EQ(bad, 0) << what << ": " << bad << " of " << expected.size() << " entries differ (max abs err " << max_err << ")";
}

mm::Config fixture_config(const json& fx) {
  mm::Config cfg = mm::load_preset(fx["preset"].get<std::string>());
  const int n_hidden = fx["n_hidden"].get<int>();
  for (auto& layer : cfg.layers)
    if (layer.kind->is(mm::LayerRole::Matmul) && !layer.out_is_vocab) layer.out = n_hidden;
  return cfg;
}

// Copies a fixture section (name -> tensor) into the store, checking names and sizes.
void load_into(mm::ParamStore& store, const json& section) {
  for (const auto& [name, tensor] : section.items()) {
    const int id = store.find(name);
    ASSERT_GE(id, 0) << "fixture parameter " << name << " is not in the model";
    const std::vector<float> v = floats(tensor);
    ASSERT_EQ(v.size(), store.info(id).size()) << name;
    std::copy(v.begin(), v.end(), store.data(id));
  }
}

void run_reference(const std::string& name) {
  SCOPED_TRACE(name);
  const json fx = load_fixture(name);
  const mm::Config cfg = fixture_config(fx);
  mm::Model model(cfg, fx["vocab_size"].get<int>());
  mm::ParamStore& store = model.params();

  // Every parameter and buffer of the model must come from the fixture, and vice versa.
  std::set<std::string> in_fixture;
  for (const auto& [n, t] : fx["params"].items()) in_fixture.insert(n);
  for (const auto& [n, t] : fx["buffers"].items()) in_fixture.insert(n);
  std::set<std::string> in_model;
  for (const auto& p : store.infos()) in_model.insert(p.name);
  ASSERT_EQ(in_fixture, in_model);
  load_into(store, fx["params"]);
  load_into(store, fx["buffers"]);

  const std::vector<int32_t> tokens = fx["tokens"].get<std::vector<int32_t>>();
  const std::vector<int32_t> targets = fx["targets"].get<std::vector<int32_t>>();
  const int batch = static_cast<int>(targets.size());
  ASSERT_EQ(tokens.size(), static_cast<std::size_t>(batch * cfg.block_size));

  const mm::Mat& logits = model.forward(tokens.data(), batch, mm::Mode::Train);
  expect_close("logits", logits.data(), floats(fx["logits"]));
  const float loss = model.loss(targets.data());
  const double torch_loss = fx["loss"].get<double>();
  EXPECT_NEAR(loss, torch_loss, kAtol + kRtol * std::abs(torch_loss));
  model.backward();

  for (const auto& [n, t] : fx["grads"].items()) expect_close("grad " + n, store.grad(store.find(n)), floats(t));
  for (const auto& [n, t] : fx["buffers_after"].items()) expect_close("buffer " + n, store.data(store.find(n)), floats(t));

  // The lecture's update, as Trainer::step does it: p += (-lr) * grad in float.
  const float neg_lr = static_cast<float>(-fx["lr"].get<double>());
  mm::FloatBuf& values = store.values();
  const mm::FloatBuf& grads = store.grads();
  for (std::size_t k = 0; k < values.size(); ++k) values[k] += neg_lr * grads[k];
  for (const auto& [n, t] : fx["params_after_sgd"].items()) expect_close("after sgd " + n, store.data(store.find(n)), floats(t));
}

TEST(TorchReference, LectureKaiming) { run_reference("lecture-kaiming"); }
TEST(TorchReference, LectureBatchnorm) { run_reference("lecture-batchnorm"); }
TEST(TorchReference, LectureDeep) { run_reference("lecture-deep"); }

}  // namespace
