// The training loop: seeded minibatches, the configured optimizer (optim.h) with the learning-rate
// schedule and optional gradient clipping (the lecture: plain SGD, step schedule), and hooks for
// observers (diagnostics, metrics, progress) after forward, backward and update. A run with
// no observer pays nothing for them.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "makemore/config.h"
#include "makemore/data.h"
#include "makemore/model.h"
#include "makemore/optim.h"
#include "makemore/rng.h"

namespace mm {

class Trainer;

class Observer {
 public:
  virtual ~Observer() = default;
  virtual void on_begin(Trainer&) {}
  virtual void after_forward(Trainer&, int64_t /*step*/, float /*loss*/) {}
  virtual void after_backward(Trainer&, int64_t /*step*/) {}
  // lr: the scheduled learning rate of this step's update. Plain SGD applied -lr * grad; other
  // optimizers applied their own rule, visible only as the change in the parameter values.
  // after_backward sees the raw gradients, before clip_grad_norm scales them.
  virtual void after_update(Trainer&, int64_t /*step*/, double /*lr*/) {}
  virtual void on_end(Trainer&) {}
  // Whether this step's after_backward reads the step's state (the gradients, the parameters
  // before their update); asked after after_forward. An observer that does not override
  // after_backward says false: the Trainer may then update each layer's parameters inside the
  // backward, as soon as their gradients are final.
  virtual bool watches_backward(int64_t /*step*/) const { return true; }
  // Whether anything this observer does at this step reads the layers' activations (their
  // out()); asked before the step's forward. False lets the forward keep only the activations
  // the backward and the loss need (ForwardContext::scratch_outputs).
  virtual bool watches_forward(int64_t /*step*/) const { return true; }
};

struct TrainStats {
  float initial_loss = 0;  // the first minibatch's loss, before any update (also for 0 steps)
  float last_loss = 0;
  int64_t steps = 0;   // steps completed
  double seconds = 0;  // wall time of the loop
  double steps_per_sec = 0;
  bool diverged = false;
  int64_t diverged_step = -1;
  bool interrupted = false;  // the stop flag was raised: `steps` steps ran, the rest did not
};

// Whether a step may update each layer's parameters inside the backward (Model::backward(done)):
// no clipping (it needs every gradient first) and a model whose parameters lie layer after layer.
// The Trainer also needs every observer to leave the backward alone (watches_backward).
bool can_update_inside_backward(const Config& cfg, const Model& model);

// The trainer's minibatch (the notebook's ix = randint(0, n, (B,))): ix.size() example indices
// drawn from gen, their contexts into xb (B, block_size) and their targets into yb.
void draw_minibatch(TorchGenerator& gen, const Examples& train, int block_size, std::vector<int64_t>& ix,
                    std::vector<int32_t>& xb, std::vector<int32_t>& yb);

class Trainer {
 public:
  Trainer(Model& model, const Config& cfg, const Examples& train, TorchGenerator& gen);
  void add_observer(Observer* o) { observers_.push_back(o); }
  // Runs cfg.steps steps (or until the loss is not finite, or until *stop turns true, checked
  // before each step). Returns what happened. (train_and_evaluate also probes the parameters
  // the last update left: an update that overflowed on the last step is a divergence too.)
  TrainStats run();
  void set_stop_flag(const std::atomic<bool>* stop) { stop_ = stop; }
  // Continue a saved run: run() starts at `step` (the steps already done) and reports
  // initial_loss as the original run's.
  void resume_at(int64_t step, float initial_loss) {
    start_ = step;
    initial_loss_ = initial_loss;
  }
  int64_t first_step() const { return start_; }
  float initial_loss() const { return initial_loss_; }  // step 0's loss (once it ran, or carried over)
  // One step: draw a minibatch, forward, backward, clip, optimizer update. Returns the loss.
  float step(int64_t i);
  // The loss the next step would see with the parameters as they are, without taking it: the
  // minibatch stream, the minibatch and the BatchNorm running statistics are put back. Not
  // finite: the last update diverged. Its forward replaces the layers' cached outputs.
  float probe_next_loss();

  Model& model() { return model_; }
  const Config& config() const { return cfg_; }
  const std::vector<int32_t>& batch_x() const { return xb_; }
  const std::vector<int32_t>& batch_y() const { return yb_; }
  Optimizer& optimizer() { return opt_; }
  const TorchGenerator& generator() const { return gen_; }  // the minibatch stream (a train state saves it)
  // The learning rate schedule's length (where a cosine reaches its min): cfg.steps unless set,
  // e.g. by inspect_training, which runs only the first steps of a longer configured run.
  void set_schedule_steps(int64_t total) { schedule_steps_ = total; }
  double lr_at(int64_t step) const { return cfg_.lr.at(step, schedule_steps_); }
  // The global gradient norm of the last step before clipping (0 when clipping is off).
  double last_grad_norm() const { return grad_norm_; }
  // Whether step(step) updates each layer's parameters inside the backward, while their
  // gradients are in cache (the same bits as one update after it): can_update_inside_backward
  // and no observer that watches this step's backward.
  bool updates_inside_backward(int64_t step) const;

 private:
  Model& model_;
  const Config& cfg_;
  const Examples& train_;
  TorchGenerator& gen_;
  std::vector<Observer*> observers_;
  Optimizer opt_;
  int64_t schedule_steps_;
  void draw_batch();  // the next minibatch into ix_, xb_, yb_
  double grad_norm_ = 0;
  const std::atomic<bool>* stop_ = nullptr;
  int64_t start_ = 0;
  float initial_loss_ = 0;
  std::vector<int64_t> ix_;
  std::vector<int32_t> xb_, yb_;
};

}  // namespace mm

namespace mm {

struct SplitLosses {
  double train = 0, val = 0, test = 0;
};
// The three splits' mean losses (Model::evaluate), the contexts they share forwarded once.
SplitLosses evaluate_splits(Model& model, const Splits& splits);

// Initializes the model from cfg.seed, trains it with the given observers, calibrates the
// BatchNorm statistics if the config asks, and evaluates the three splits (skipped on
// divergence). The whole of what `makemore train` does, without the files.
struct TrainOutcome {
  TrainStats stats;
  SplitLosses losses;
  double eval_seconds = 0;  // evaluating the three splits
};
// What a training needs beyond the model, config and data.
struct TrainControl {
  const std::atomic<bool>* stop = nullptr;  // raised: stop before the next step
  std::string resume_from;                  // a train state file: the model is already loaded; continue
  // Called when the loop ends without diverging (finished or stopped), before calibration and
  // evaluation: where a run folder saves its train state (run.cpp).
  std::function<void(Trainer&, const TrainStats&)> on_trained;
};
// An interrupted run (stop raised) is still evaluated: what it learned so far can be saved.
TrainOutcome train_and_evaluate(Model& model, const Config& cfg, const Splits& splits, const std::vector<Observer*>& observers,
                                const TrainControl& control = {});

// The train state (train_state.safetensors in a run folder): everything continuing the run needs
// to give the same bits as never stopping — the step, the parameters, the minibatch generator's
// state, the optimizer's step count and buffers, the BatchNorm running statistics as training
// left them (before any --calibrate), and the initial loss. One file, written atomically, so it
// is consistent by itself whatever happens to the checkpoint beside it.
struct TrainState {
  int64_t step = 0;
  float initial_loss = 0;
  // How the run records itself (`train --diag-every / --save-every / --eval-every`), so a resumed
  // run records the same way unless told otherwise; -1: not saved.
  int64_t diag_every = -1, save_every = -1, eval_every = -1;
};
void save_train_state(const std::string& path, const Optimizer& opt, const TorchGenerator& gen, const Model& model,
                      const TrainState& state);
// Restores opt, gen and the model's parameters and buffers; every mismatch is an mm::Error naming
// the file.
TrainState load_train_state(const std::string& path, Optimizer& opt, TorchGenerator& gen, Model& model);

}  // namespace mm
