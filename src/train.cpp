// The training loop. Per step, as the notebook's cell 7: ix = randint(0, n, (B,)); forward;
// loss; backward; p += -lr * grad (plain SGD; other optimizers in optim.cpp, after an optional
// clip_grad_norm_). Nothing is allocated inside the loop once the first step has sized every
// buffer; the optimizer's state is allocated with the Trainer.
#include "makemore/train.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <string>

#include "makemore/checkpoint.h"
#include "makemore/error.h"
#include "makemore/json_text.h"

namespace mm {

Trainer::Trainer(Model& model, const Config& cfg, const Examples& train, TorchGenerator& gen)
    : model_(model),
      cfg_(cfg),
      train_(train),
      gen_(gen),
      opt_(cfg.optimizer, model.params().values().size()),
      schedule_steps_(cfg.steps) {
  const auto B = static_cast<std::size_t>(cfg.batch_size);
  ix_.resize(B);
  xb_.resize(B * static_cast<std::size_t>(cfg.block_size));
  yb_.resize(B);
}

void draw_minibatch(TorchGenerator& gen, const Examples& train, int block_size, std::vector<int64_t>& ix,
                    std::vector<int32_t>& xb, std::vector<int32_t>& yb) {
  const std::size_t B = ix.size(), T = static_cast<std::size_t>(block_size);
  gen.randint(0, static_cast<int64_t>(train.size()), ix.data(), B);
  // The rows are scattered over megabytes of examples: ask for all of them before reading any,
  // so that their cache misses overlap.
  for (std::size_t b = 0; b < B; ++b) {
    const auto r = static_cast<std::size_t>(ix[b]);
    __builtin_prefetch(train.x.data() + r * T);
    __builtin_prefetch(train.y.data() + r);
  }
  for (std::size_t b = 0; b < B; ++b) {
    const auto r = static_cast<std::size_t>(ix[b]);
    for (std::size_t t = 0; t < T; ++t) xb[b * T + t] = train.x[r * T + t];
    yb[b] = train.y[r];
  }
}

void Trainer::draw_batch() { draw_minibatch(gen_, train_, cfg_.block_size, ix_, xb_, yb_); }

float Trainer::step(int64_t i) {
  draw_batch();
  ForwardContext ctx(Mode::Train, &gen_);
  ctx.scratch_outputs =
      std::none_of(observers_.begin(), observers_.end(), [&](const Observer* o) { return o->watches_forward(i); });
  model_.forward(xb_.data(), static_cast<int>(ix_.size()), ctx);
  float loss = model_.loss(yb_.data());
  // Activations that overflowed (inf squashed by a tanh to 1) make any loss meaningless.
  if (!model_.outputs_finite()) loss = std::numeric_limits<float>::quiet_NaN();
  for (auto* o : observers_) o->after_forward(*this, i, loss);
  const double lr = lr_at(i);
  auto& params = model_.params();
  if (updates_inside_backward(i)) {
    // Two pointers captured: std::function keeps the lambda without allocating.
    const struct {
      float* p;
      const float* g;
      double lr;
    } a{params.values().data(), params.grads().data(), lr};
    model_.backward([this, &a](std::size_t k0, std::size_t k1, std::size_t row) { opt_.update(a.p, a.g, a.lr, k0, k1, row); });
    opt_.advance();
  } else {
    model_.backward();
    for (auto* o : observers_) o->after_backward(*this, i);
    if (cfg_.clip_grad_norm > 0) grad_norm_ = clip_grad_norm(params.grads(), cfg_.clip_grad_norm);
    opt_.step(params.values(), params.grads(), lr);
  }
  for (auto* o : observers_) o->after_update(*this, i, lr);
  return loss;
}

bool can_update_inside_backward(const Config& cfg, const Model& model) {
  return cfg.clip_grad_norm <= 0 && model.updates_by_layer();
}

bool Trainer::updates_inside_backward(int64_t step) const {
  if (!can_update_inside_backward(cfg_, model_)) return false;
  for (const auto* o : observers_)
    if (o->watches_backward(step)) return false;
  return true;
}

float Trainer::probe_next_loss() {
  const TorchGenerator gen = gen_;
  const FloatBuf buffers = model_.params().buffers();
  const auto ix = ix_;
  const auto xb = xb_, yb = yb_;
  draw_batch();
  model_.forward(xb_.data(), static_cast<int>(ix_.size()), ForwardContext(Mode::Train, &gen_));
  const float loss = model_.outputs_finite() ? model_.loss(yb_.data()) : std::numeric_limits<float>::quiet_NaN();
  model_.params().buffers() = buffers;
  gen_ = gen;
  ix_ = ix;
  xb_ = xb;
  yb_ = yb;
  return loss;
}

TrainStats Trainer::run() {
  TrainStats st;
  st.initial_loss = initial_loss_;
  st.steps = start_;
  for (auto* o : observers_) o->on_begin(*this);
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t i = start_; i < cfg_.steps; ++i) {
    if (stop_ && stop_->load(std::memory_order_relaxed)) {
      st.interrupted = true;
      break;
    }
    const float loss = step(i);
    if (i == 0) st.initial_loss = initial_loss_ = loss;
    st.last_loss = loss;
    st.steps = i + 1;
    if (!std::isfinite(loss)) {
      st.diverged = true;
      st.diverged_step = i;
      break;
    }
  }
  if (cfg_.steps == 0 && start_ == 0) {
    // No update, but the loss the lecture reads at initialization is still worth reporting:
    // the first minibatch's loss, as step 0 would see it. A train-mode forward moves the
    // BatchNorm running statistics, so they are put back: a 0-step run saves the init.
    const FloatBuf saved = model_.params().buffers();
    draw_batch();
    model_.forward(xb_.data(), static_cast<int>(ix_.size()), ForwardContext(Mode::Train, &gen_));
    st.initial_loss = st.last_loss = model_.loss(yb_.data());
    model_.params().buffers() = saved;
  }
  st.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  st.steps_per_sec = st.seconds > 0 ? static_cast<double>(st.steps - start_) / st.seconds : 0;
  for (auto* o : observers_) o->on_end(*this);
  return st;
}

}  // namespace mm

namespace mm {

SplitLosses evaluate_splits(Model& model, const Splits& splits) {
  const std::vector<double> l = model.evaluate({&splits.train, &splits.val, &splits.test});
  return {l[0], l[1], l[2]};
}

TrainOutcome train_and_evaluate(Model& model, const Config& cfg, const Splits& splits, const std::vector<Observer*>& observers,
                                const TrainControl& control) {
  TorchGenerator gen(cfg.seed);
  const bool resume = !control.resume_from.empty();
  if (!resume) model.init(gen, splits.train);  // with the LSUV data pass when a layer asks for it
  Trainer trainer(model, cfg, splits.train, gen);
  if (resume) {
    const TrainState s = load_train_state(control.resume_from, trainer.optimizer(), gen, model);
    trainer.resume_at(s.step, s.initial_loss);
  }
  for (auto* o : observers) trainer.add_observer(o);
  trainer.set_stop_flag(control.stop);
  TrainOutcome out;
  out.stats = trainer.run();
  if (!out.stats.diverged && out.stats.steps > trainer.first_step() && !std::isfinite(trainer.probe_next_loss())) {
    // The last update overflowed: no later step ran to see it. (Here, not in run(): the probe's
    // forward replaces the layers' cached outputs, which inspect reads after run().)
    out.stats.diverged = true;
    out.stats.diverged_step = out.stats.steps;
  }
  if (out.stats.diverged) return out;
  if (control.on_trained) control.on_trained(trainer, out.stats);
  if (cfg.calibrate_batchnorm) model.calibrate(splits.train);
  const auto e0 = std::chrono::steady_clock::now();
  out.losses = evaluate_splits(model, splits);
  out.eval_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - e0).count();
  if (!std::isfinite(out.losses.train) || !std::isfinite(out.losses.val) || !std::isfinite(out.losses.test)) {
    // The model the training left (or, finishing a resumed run, the one it resumed) overflows
    // on the splits: a divergence, never losses to report.
    out.stats.diverged = true;
    out.stats.diverged_step = out.stats.steps;
  }
  return out;
}

}  // namespace mm

namespace mm {

namespace {
constexpr const char* kStateNames[3] = {"optimizer.buffer_a", "optimizer.buffer_b", "optimizer.buffer_c"};
}

void save_train_state(const std::string& path, const Optimizer& opt, const TorchGenerator& gen, const Model& model,
                      const TrainState& state) {
  TensorFile f;
  for (int i = 0; i < 3; ++i) {
    const FloatBuf& b = opt.state_buffer(i);
    if (!b.empty()) f.tensors.push_back({kStateNames[i], {static_cast<int64_t>(b.size())}, {b.begin(), b.end()}});
  }
  // The parameters too: the state alone continues the run, so it is consistent by construction
  // even when a run is killed between writing it and the checkpoint.
  const FloatBuf& values = model.params().values();
  f.tensors.push_back({"model.values", {static_cast<int64_t>(values.size())}, {values.begin(), values.end()}});
  const FloatBuf& buffers = model.params().buffers();
  if (!buffers.empty())
    f.tensors.push_back({"model.buffers", {static_cast<int64_t>(buffers.size())}, {buffers.begin(), buffers.end()}});
  f.metadata["format"] = "makemore.cpp train state 2";
  f.metadata["step"] = std::to_string(state.step);
  f.metadata["optimizer"] = opt.spec().name();
  f.metadata["optimizer_steps"] = std::to_string(opt.steps_taken());
  f.metadata["generator"] = gen.state();
  f.metadata["initial_loss"] = fmt::format("{:a}", state.initial_loss);
  if (state.diag_every >= 0) f.metadata["diag_every"] = std::to_string(state.diag_every);
  if (state.save_every >= 0) f.metadata["save_every"] = std::to_string(state.save_every);
  if (state.eval_every >= 0) f.metadata["eval_every"] = std::to_string(state.eval_every);
  save_safetensors(path, f);
}

TrainState load_train_state(const std::string& path, Optimizer& opt, TorchGenerator& gen, Model& model) {
  const TensorFile f = load_own_safetensors(path);
  auto bad = [&](const std::string& what) {
    return Error(fmt::format("{}: {}; the run cannot be continued, train it again from the start", path, what));
  };
  auto meta = [&](const char* key) -> const std::string& {
    auto it = f.metadata.find(key);
    if (it == f.metadata.end()) throw bad(fmt::format("not a makemore.cpp train state (no '{}')", key));
    return it->second;
  };
  if (meta("format") != "makemore.cpp train state 2") throw bad("unknown train state format '" + meta("format") + "'");
  if (meta("optimizer") != opt.spec().name())
    throw bad(fmt::format("saved for optimizer '{}', the config says '{}'", meta("optimizer"), opt.spec().name()));
  TrainState st;
  constexpr int64_t kMaxCount = int64_t{1} << 40;  // the config's bound on train.steps
  const auto count = [&](const char* key) {
    const auto v = metadata_count(meta(key), kMaxCount);
    if (!v) throw bad(fmt::format("metadata '{}' is '{}', not a count", key, text_excerpt(meta(key))));
    return *v;
  };
  st.step = count("step");
  opt.set_steps_taken(count("optimizer_steps"));
  for (auto [key, field] : {std::pair{"diag_every", &st.diag_every}, std::pair{"save_every", &st.save_every},
                            std::pair{"eval_every", &st.eval_every}})
    if (f.metadata.count(key)) *field = count(key);
  try {
    std::size_t used = 0;
    st.initial_loss = std::stof(meta("initial_loss"), &used);
    if (used != meta("initial_loss").size()) throw std::invalid_argument("initial_loss");
  } catch (const std::exception&) {
    throw bad(fmt::format("metadata 'initial_loss' is '{}', not a number", text_excerpt(meta("initial_loss"))));
  }
  for (int i = 0; i < 3; ++i) {
    FloatBuf& b = opt.state_buffer(i);
    const NamedTensor* t = f.find(kStateNames[i]);
    if (b.empty() != (t == nullptr) || (t && t->data.size() != b.size()))
      throw bad(fmt::format("optimizer state '{}' does not fit this config's model", kStateNames[i]));
    if (t) std::copy(t->data.begin(), t->data.end(), b.begin());
  }
  FloatBuf& values = model.params().values();
  const NamedTensor* v = f.find("model.values");
  if (!v || v->data.size() != values.size()) throw bad("parameters missing, or they do not fit this config's model");
  std::copy(v->data.begin(), v->data.end(), values.begin());
  FloatBuf& buffers = model.params().buffers();
  const NamedTensor* t = f.find("model.buffers");
  if (buffers.empty() != (t == nullptr) || (t && t->data.size() != buffers.size()))
    throw bad("BatchNorm running statistics do not fit this config's model");
  if (t) std::copy(t->data.begin(), t->data.end(), buffers.begin());
  if (!gen.set_state(meta("generator"))) throw bad("corrupt generator state");
  return st;
}

}  // namespace mm
