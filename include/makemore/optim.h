// Optimizers over the ParamStore's flat buffers: torch.optim's SGD (momentum, Nesterov), RMSprop,
// Adam and AdamW with PyTorch 1.13's single-tensor update rules, and clip_grad_norm_. Each step
// is one pass over the whole buffer; the padding between parameters has zero value and zero
// gradient, and every rule maps (p = 0, g = 0, state = 0) to 0, so it stays zero.
// The learning rate comes from the schedule (config.h); docs/optim.md has every formula.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "makemore/config.h"
#include "makemore/tensor.h"

namespace mm {

// Updates of at least this many elements (a model's, or one layer's inside the backward: big-mlp's
// 1000 x 1000 weights) split over threads() threads.
inline constexpr std::size_t kParallelMinUpdate = 1u << 19;

class Optimizer {
 public:
  // n: the length of ParamStore::values(); the state buffers are allocated here, once.
  Optimizer(const OptimizerSpec& spec, std::size_t n);

  // One update of p (length n) from g with learning rate lr. g is read, never written
  // (SGD's weight decay and momentum work in the state buffers).
  void step(float* p, const float* g, double lr);
  void step(FloatBuf& p, const FloatBuf& g, double lr) { step(p.data(), g.data(), lr); }
  // A step in pieces: update() the elements [k0, k1) (every element of [0, n) once, in any
  // order: the rules are element-wise, so each gets the bits step() gives it), then advance().
  // A large range splits over threads() at whole rows of `row` elements, in the blocks of rows
  // gemm() gives each thread of a product with that matrix (dW by rows, dx by W's rows, x W by
  // W's rows for a wide W), so each thread updates what it wrote and read.
  void update(float* p, const float* g, double lr, std::size_t k0, std::size_t k1, std::size_t row = 1);
  void advance() { ++t_; }

  const OptimizerSpec& spec() const { return spec_; }
  int64_t steps_taken() const { return t_; }
  // The state a resumed run needs (train_state.safetensors): the step count and the three
  // buffers, named as torch.optim names them for this type (buffer(name) below); unused
  // buffers are empty.
  void set_steps_taken(int64_t t) { t_ = t; }
  FloatBuf& state_buffer(int i) { return i == 0 ? buf_a_ : i == 1 ? buf_b_ : buf_c_; }
  const FloatBuf& state_buffer(int i) const { return i == 0 ? buf_a_ : i == 1 ? buf_b_ : buf_c_; }
  // The state, named as torch.optim's state_dict names it (empty buffers where unused):
  // momentum_buffer (SGD, RMSprop with momentum), square_avg / grad_avg (RMSprop),
  // exp_avg / exp_avg_sq / max_exp_avg_sq (Adam, AdamW).
  const FloatBuf& buffer(const std::string& name) const;

 private:
  // Each updates the elements [k0, k1).
  void sgd(float* p, const float* g, float lr, std::size_t k0, std::size_t k1);
  void rmsprop(float* p, const float* g, float lr, std::size_t k0, std::size_t k1);
  void adam(float* p, const float* g, double lr, std::size_t k0, std::size_t k1);

  OptimizerSpec spec_;
  std::size_t n_;
  int64_t t_ = 0;   // steps taken (Adam's `step` state)
  FloatBuf buf_a_;  // SGD / RMSprop: momentum_buffer; Adam: exp_avg
  FloatBuf buf_b_;  // RMSprop: square_avg; Adam: exp_avg_sq
  FloatBuf buf_c_;  // RMSprop centered: grad_avg; Adam amsgrad: max_exp_avg_sq
  FloatBuf empty_;
};

// torch.nn.utils.clip_grad_norm_(params, max_norm) over the whole gradient buffer: the global
// L2 norm of all gradients (padding adds zeros), and when max_norm / (norm + 1e-6) < 1 every
// gradient is multiplied by that factor. Returns the norm before clipping.
double clip_grad_norm(FloatBuf& grads, double max_norm);

}  // namespace mm
