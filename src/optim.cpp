// The optimizers, written as PyTorch 1.13 writes them (torch/optim/{sgd,rmsprop,adam,adamw}.py,
// the single-tensor paths), element by element: each tensor op of the Python becomes one float
// operation in the same order, with the Python-side scalars (bias corrections, step size)
// computed in double and rounded to float as torch rounds a Python number for a float tensor.
// The loops branch only on loop-invariant settings, which the compiler hoists (unswitches).
#include "makemore/optim.h"

#include <cmath>
#include <stdexcept>

#include "kernels/kernels.h"
#include "makemore/gemm.h"
#include "makemore/parallel.h"

namespace mm {

Optimizer::Optimizer(const OptimizerSpec& spec, std::size_t n) : spec_(spec), n_(n) {
  switch (spec_.kind) {
    case OptimizerKind::Sgd:
      if (spec_.momentum != 0) buf_a_.assign(n, 0.0f);
      break;
    case OptimizerKind::Rmsprop:
      if (spec_.momentum > 0) buf_a_.assign(n, 0.0f);
      buf_b_.assign(n, 0.0f);
      if (spec_.centered) buf_c_.assign(n, 0.0f);
      break;
    case OptimizerKind::Adam:
    case OptimizerKind::AdamW:
      buf_a_.assign(n, 0.0f);
      buf_b_.assign(n, 0.0f);
      if (spec_.amsgrad) buf_c_.assign(n, 0.0f);
      break;
  }
}

const FloatBuf& Optimizer::buffer(const std::string& name) const {
  const bool adam = spec_.is_adam(), rmsprop = spec_.kind == OptimizerKind::Rmsprop;
  if (name == "momentum_buffer" && !adam) return buf_a_;
  if (name == "square_avg" && rmsprop) return buf_b_;
  if (name == "grad_avg" && rmsprop) return buf_c_;
  if (name == "exp_avg" && adam) return buf_a_;
  if (name == "exp_avg_sq" && adam) return buf_b_;
  if (name == "max_exp_avg_sq" && adam) return buf_c_;
  return empty_;
}

void Optimizer::step(float* p, const float* g, double lr) {
  update(p, g, lr, 0, n_);
  advance();
}

void Optimizer::update(float* p, const float* g, double lr, std::size_t k0, std::size_t k1, std::size_t row) {
  auto range = [&](std::size_t a, std::size_t b) {
    switch (spec_.kind) {
      case OptimizerKind::Sgd:
        return sgd(p, g, static_cast<float>(lr), a, b);
      case OptimizerKind::Rmsprop:
        return rmsprop(p, g, static_cast<float>(lr), a, b);
      case OptimizerKind::Adam:
      case OptimizerKind::AdamW:
        return adam(p, g, lr, a, b);
    }
  };
  // Element-wise rules: a large range splits over the threads, at whole rows as gemm() splits
  // the matrix's products. Same arithmetic per element.
  const int nt = threads();
  const std::size_t n = k1 - k0;
  if (nt > 1 && n >= kParallelMinUpdate) {
    const std::size_t per = rows_per_thread((n + row - 1) / row, nt) * row;
    parallel_run(nt, [&](int thread) {
      const auto i = static_cast<std::size_t>(block_of(thread, nt));
      const std::size_t a = std::min(k1, k0 + i * per), b = std::min(k1, a + per);
      if (a < b) range(a, b);
    });
  } else {
    range(k0, k1);
  }
}

// d_p = g (+ weight_decay * p); buf = d_p at the first step, then buf * momentum +
// (1 - dampening) * d_p; d_p = nesterov ? d_p + momentum * buf : buf; p += -lr * d_p.
void Optimizer::sgd(float* p, const float* g, float lr, std::size_t k0, std::size_t k1) {
  const kernels::Table& k = kernels::kernels();
  if (spec_.is_plain_sgd()) {
    // The lecture's `p.data += -lr * p.grad`, the very expression Trainer::step has always used,
    // so the lecture's runs stay bit-identical. Written as two roundings like torch's mul and
    // add, but note: GCC (-ffp-contract=fast, the C++ default) fuses it into one FMA where the
    // kernel set has FMAs (avx2, avx512), as it did in train.cpp before (see docs/optim.md).
    return k.sgd_plain(p, g, -lr, k0, k1);
  }
  kernels::SgdArgs a;
  a.neg_lr = -lr;
  a.weight_decay = static_cast<float>(spec_.weight_decay);
  a.momentum = static_cast<float>(spec_.momentum);
  a.keep = static_cast<float>(1.0 - spec_.dampening);
  a.use_wd = spec_.weight_decay != 0;
  a.use_mom = spec_.momentum != 0;
  a.first = t_ == 0;
  a.nesterov = spec_.nesterov;
  k.sgd(p, g, buf_a_.data(), a, k0, k1);
}

// g (+ weight_decay * p); square_avg = square_avg * alpha + (1 - alpha) * g * g;
// centered: grad_avg = grad_avg * alpha + (1 - alpha) * g, avg = sqrt(square_avg - grad_avg^2),
// else avg = sqrt(square_avg); avg += eps; momentum > 0: buf = buf * momentum + g / avg,
// p += -lr * buf; else p += -lr * g / avg.
void Optimizer::rmsprop(float* p, const float* g, float lr, std::size_t k0, std::size_t k1) {
  kernels::RmspropArgs a;
  a.neg_lr = -lr;
  a.weight_decay = static_cast<float>(spec_.weight_decay);
  a.alpha = static_cast<float>(spec_.alpha);
  a.one_m_alpha = static_cast<float>(1.0 - spec_.alpha);
  a.eps = static_cast<float>(spec_.eps);
  a.momentum = static_cast<float>(spec_.momentum);
  a.use_wd = spec_.weight_decay != 0;
  a.use_mom = spec_.momentum > 0;
  a.centered = spec_.centered;
  kernels::kernels().rmsprop(p, g, buf_a_.data(), buf_b_.data(), buf_c_.data(), a, k0, k1);
}

// step t = 1, 2, ...; adamw: p *= 1 - lr * weight_decay; adam: g += weight_decay * p;
// exp_avg = exp_avg * beta1 + (1 - beta1) * g; exp_avg_sq = exp_avg_sq * beta2 + (1 - beta2) * g * g;
// denom = sqrt(exp_avg_sq) / sqrt(1 - beta2^t) + eps; p += -(lr / (1 - beta1^t)) * exp_avg / denom.
// amsgrad: max_exp_avg_sq = max(max_exp_avg_sq, exp_avg_sq) replaces exp_avg_sq in denom.
void Optimizer::adam(float* p, const float* g, double lr, std::size_t k0, std::size_t k1) {
  const double step = static_cast<double>(t_ + 1);
  const double bias_correction1 = 1 - std::pow(spec_.beta1, step);
  const double bias_correction2 = 1 - std::pow(spec_.beta2, step);
  kernels::AdamArgs a;
  a.decoupled = spec_.kind == OptimizerKind::AdamW;
  a.neg_step_size = static_cast<float>(-(lr / bias_correction1));
  a.bc2_sqrt = static_cast<float>(std::sqrt(bias_correction2));
  a.b1 = static_cast<float>(spec_.beta1);
  a.one_m_b1 = static_cast<float>(1.0 - spec_.beta1);
  a.b2 = static_cast<float>(spec_.beta2);
  a.one_m_b2 = static_cast<float>(1.0 - spec_.beta2);
  a.eps = static_cast<float>(spec_.eps);
  a.weight_decay = static_cast<float>(spec_.weight_decay);
  a.shrink = static_cast<float>(1.0 - lr * spec_.weight_decay);
  a.coupled_wd = !a.decoupled && spec_.weight_decay != 0;
  a.amsgrad = spec_.amsgrad;
  kernels::kernels().adam(p, g, buf_a_.data(), buf_b_.data(), buf_c_.data(), a, k0, k1);
}

double clip_grad_norm(FloatBuf& grads, double max_norm) {
  double ss = 0;
  for (const float x : grads) ss += static_cast<double>(x) * static_cast<double>(x);
  const double norm = std::sqrt(ss);
  const double coef = max_norm / (norm + 1e-6);
  if (coef < 1.0) {
    const float c = static_cast<float>(coef);
    for (float& x : grads) x = x * c;
  }
  return norm;
}

}  // namespace mm
