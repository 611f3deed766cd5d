// The training loop. Per step, as the notebook's cell 7: ix = randint(0, n, (B,)); forward;
// loss; backward; p += -lr * grad (plain SGD; other optimizers in optim.cpp, after an optional
// clip_grad_norm_). Nothing is allocated inside the loop once the first step has sized every
// buffer; the optimizer's state is allocated with the Trainer.
#include "makemore/train.h"

#include <chrono>
#include <cmath>

namespace mm {

Trainer::Trainer(Model& model, const Config& cfg, const Examples& train, TorchGenerator& gen)
    : model_(model), cfg_(cfg), train_(train), gen_(gen), opt_(cfg.optimizer, model.params().values().size()),
      schedule_steps_(cfg.steps) {
  const auto B = static_cast<std::size_t>(cfg.batch_size);
  ix_.resize(B);
  xb_.resize(B * static_cast<std::size_t>(cfg.block_size));
  yb_.resize(B);
}

void Trainer::draw_batch() {
  const std::size_t B = ix_.size(), T = static_cast<std::size_t>(cfg_.block_size);
  gen_.randint(0, static_cast<int64_t>(train_.size()), ix_.data(), B);
  for (std::size_t b = 0; b < B; ++b) {
    const auto r = static_cast<std::size_t>(ix_[b]);
    for (std::size_t t = 0; t < T; ++t) xb_[b * T + t] = train_.x[r * T + t];
    yb_[b] = train_.y[r];
  }
}

float Trainer::step(int64_t i) {
  draw_batch();
  model_.forward(xb_.data(), static_cast<int>(ix_.size()), Mode::Train);
  const float loss = model_.loss(yb_.data());
  for (auto* o : observers_) o->after_forward(*this, i, loss);
  model_.backward();
  for (auto* o : observers_) o->after_backward(*this, i);
  const double lr = lr_at(i);
  auto& params = model_.params();
  if (cfg_.clip_grad_norm > 0) grad_norm_ = clip_grad_norm(params.grads(), cfg_.clip_grad_norm);
  opt_.step(params.values(), params.grads(), lr);
  for (auto* o : observers_) o->after_update(*this, i, lr);
  return loss;
}

TrainStats Trainer::run() {
  TrainStats st;
  for (auto* o : observers_) o->on_begin(*this);
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < cfg_.steps; ++i) {
    if (stop_ && stop_->load(std::memory_order_relaxed)) {
      st.interrupted = true;
      break;
    }
    const float loss = step(i);
    if (i == 0) st.initial_loss = loss;
    st.last_loss = loss;
    st.steps = i + 1;
    if (!std::isfinite(loss)) {
      st.diverged = true;
      st.diverged_step = i;
      break;
    }
  }
  if (cfg_.steps == 0) {
    // No update, but the loss the lecture reads at initialization is still worth reporting:
    // the first minibatch's loss, as step 0 would see it. A train-mode forward moves the
    // BatchNorm running statistics, so they are put back: a 0-step run saves the init.
    const FloatBuf saved = model_.params().buffers();
    draw_batch();
    model_.forward(xb_.data(), static_cast<int>(ix_.size()), Mode::Train);
    st.initial_loss = st.last_loss = model_.loss(yb_.data());
    model_.params().buffers() = saved;
  }
  st.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  st.steps_per_sec = st.seconds > 0 ? static_cast<double>(st.steps) / st.seconds : 0;
  for (auto* o : observers_) o->on_end(*this);
  return st;
}

}  // namespace mm

namespace mm {

TrainOutcome train_and_evaluate(Model& model, const Config& cfg, const Splits& splits,
                                const std::vector<Observer*>& observers, const std::atomic<bool>* stop) {
  TorchGenerator gen(cfg.seed);
  model.init(gen, splits.train);  // with the LSUV data pass when a layer asks for it
  Trainer trainer(model, cfg, splits.train, gen);
  for (auto* o : observers) trainer.add_observer(o);
  trainer.set_stop_flag(stop);
  TrainOutcome out;
  out.stats = trainer.run();
  if (out.stats.diverged) return out;
  if (cfg.calibrate_batchnorm) model.calibrate(splits.train);
  const auto e0 = std::chrono::steady_clock::now();
  out.losses.train = model.evaluate(splits.train);
  out.eval_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - e0).count();
  out.losses.val = model.evaluate(splits.val);
  out.losses.test = model.evaluate(splits.test);
  return out;
}

}  // namespace mm
