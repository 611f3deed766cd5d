// The optimizers, written as PyTorch 1.13 writes them (torch/optim/{sgd,rmsprop,adam,adamw}.py,
// the single-tensor paths), element by element: each tensor op of the Python becomes one float
// operation in the same order, with the Python-side scalars (bias corrections, step size)
// computed in double and rounded to float as torch rounds a Python number for a float tensor.
// The loops branch only on loop-invariant settings, which the compiler hoists (unswitches).
#include "makemore/optim.h"

#include <cmath>
#include <stdexcept>

#include "makemore/parallel.h"

namespace mm {

Optimizer::Optimizer(const OptimizerSpec& spec, std::size_t n) : spec_(spec), n_(n) {
  const std::string& t = spec_.type;
  if (t == "sgd") {
    if (spec_.momentum != 0) buf_a_.assign(n, 0.0f);
  } else if (t == "rmsprop") {
    if (spec_.momentum > 0) buf_a_.assign(n, 0.0f);
    buf_b_.assign(n, 0.0f);
    if (spec_.centered) buf_c_.assign(n, 0.0f);
  } else if (t == "adam" || t == "adamw") {
    buf_a_.assign(n, 0.0f);
    buf_b_.assign(n, 0.0f);
    if (spec_.amsgrad) buf_c_.assign(n, 0.0f);
  } else {
    throw std::invalid_argument("unknown optimizer type " + t);
  }
}

const FloatBuf& Optimizer::buffer(const std::string& name) const {
  const std::string& t = spec_.type;
  const bool adam = t == "adam" || t == "adamw";
  if (name == "momentum_buffer" && !adam) return buf_a_;
  if (name == "square_avg" && t == "rmsprop") return buf_b_;
  if (name == "grad_avg" && t == "rmsprop") return buf_c_;
  if (name == "exp_avg" && adam) return buf_a_;
  if (name == "exp_avg_sq" && adam) return buf_b_;
  if (name == "max_exp_avg_sq" && adam) return buf_c_;
  return empty_;
}

void Optimizer::step(float* p, const float* g, double lr) {
  const std::string& t = spec_.type;
  auto range = [&](std::size_t k0, std::size_t k1) {
    if (t == "sgd")
      sgd(p, g, static_cast<float>(lr), k0, k1);
    else if (t == "rmsprop")
      rmsprop(p, g, static_cast<float>(lr), k0, k1);
    else
      adam(p, g, lr, k0, k1);
  };
  // Element-wise rules: a large model's update splits over the threads (the gradients of a
  // product split by columns were written by both cores). Same arithmetic per element.
  const int nt = threads();
  if (nt > 1 && n_ >= kParallelMinUpdate) {
    const std::size_t per = (n_ / static_cast<std::size_t>(nt) + kAlignFloats - 1) / kAlignFloats * kAlignFloats;
    parallel_run(nt, [&](int i) {
      const std::size_t k0 = std::min(n_, static_cast<std::size_t>(i) * per), k1 = std::min(n_, k0 + per);
      if (k0 < k1) range(k0, k1);
    });
  } else {
    range(0, n_);
  }
  ++t_;
}

// d_p = g (+ weight_decay * p); buf = d_p at the first step, then buf * momentum +
// (1 - dampening) * d_p; d_p = nesterov ? d_p + momentum * buf : buf; p += -lr * d_p.
void Optimizer::sgd(float* p, const float* g, float lr, std::size_t k0, std::size_t k1) {
  const float neg_lr = -lr;
  if (spec_.is_plain_sgd()) {
    // The lecture's `p.data += -lr * p.grad`, the very expression Trainer::step has always used,
    // so the lecture's runs stay bit-identical. Written as two roundings like torch's mul and
    // add, but note: GCC (-ffp-contract=fast, the C++ default) fuses it into one FMA under
    // -march=native, as it did in train.cpp before (see docs/optim.md).
    for (std::size_t k = k0; k < k1; ++k) {
      const float u = neg_lr * g[k];
      p[k] = p[k] + u;
    }
    return;
  }
  const float wd = static_cast<float>(spec_.weight_decay);
  const float mom = static_cast<float>(spec_.momentum);
  const float keep = static_cast<float>(1.0 - spec_.dampening);
  const bool use_wd = spec_.weight_decay != 0, use_mom = spec_.momentum != 0;
  const bool first = t_ == 0, nesterov = spec_.nesterov;
  float* buf = buf_a_.data();
  for (std::size_t k = k0; k < k1; ++k) {
    float d = g[k];
    if (use_wd) d = d + wd * p[k];
    if (use_mom) {
      const float b = first ? d : buf[k] * mom + keep * d;
      buf[k] = b;
      d = nesterov ? d + mom * b : b;
    }
    p[k] = p[k] + neg_lr * d;
  }
}

// g (+ weight_decay * p); square_avg = square_avg * alpha + (1 - alpha) * g * g;
// centered: grad_avg = grad_avg * alpha + (1 - alpha) * g, avg = sqrt(square_avg - grad_avg^2),
// else avg = sqrt(square_avg); avg += eps; momentum > 0: buf = buf * momentum + g / avg,
// p += -lr * buf; else p += -lr * g / avg.
void Optimizer::rmsprop(float* p, const float* g, float lr, std::size_t k0, std::size_t k1) {
  const float neg_lr = -lr;
  const float wd = static_cast<float>(spec_.weight_decay);
  const float alpha = static_cast<float>(spec_.alpha);
  const float one_m_alpha = static_cast<float>(1.0 - spec_.alpha);
  const float eps = static_cast<float>(spec_.eps);
  const float mom = static_cast<float>(spec_.momentum);
  const bool use_wd = spec_.weight_decay != 0, use_mom = spec_.momentum > 0, centered = spec_.centered;
  float* buf = buf_a_.data();
  float* sq = buf_b_.data();
  float* ga = buf_c_.data();
  for (std::size_t k = k0; k < k1; ++k) {
    float gk = g[k];
    if (use_wd) gk = gk + wd * p[k];
    const float s = sq[k] * alpha + one_m_alpha * gk * gk;
    sq[k] = s;
    float avg;
    if (centered) {
      const float a = ga[k] * alpha + one_m_alpha * gk;
      ga[k] = a;
      avg = std::sqrt(s + -1.0f * a * a);
    } else {
      avg = std::sqrt(s);
    }
    avg = avg + eps;
    if (use_mom) {
      const float b = buf[k] * mom + 1.0f * gk / avg;
      buf[k] = b;
      p[k] = p[k] + neg_lr * b;
    } else {
      p[k] = p[k] + neg_lr * gk / avg;
    }
  }
}

// step t = 1, 2, ...; adamw: p *= 1 - lr * weight_decay; adam: g += weight_decay * p;
// exp_avg = exp_avg * beta1 + (1 - beta1) * g; exp_avg_sq = exp_avg_sq * beta2 + (1 - beta2) * g * g;
// denom = sqrt(exp_avg_sq) / sqrt(1 - beta2^t) + eps; p += -(lr / (1 - beta1^t)) * exp_avg / denom.
// amsgrad: max_exp_avg_sq = max(max_exp_avg_sq, exp_avg_sq) replaces exp_avg_sq in denom.
void Optimizer::adam(float* p, const float* g, double lr, std::size_t k0, std::size_t k1) {
  const bool decoupled = spec_.type == "adamw";
  const double step = static_cast<double>(t_ + 1);
  const double bias_correction1 = 1 - std::pow(spec_.beta1, step);
  const double bias_correction2 = 1 - std::pow(spec_.beta2, step);
  const float neg_step_size = static_cast<float>(-(lr / bias_correction1));
  const float bc2_sqrt = static_cast<float>(std::sqrt(bias_correction2));
  const float b1 = static_cast<float>(spec_.beta1), one_m_b1 = static_cast<float>(1.0 - spec_.beta1);
  const float b2 = static_cast<float>(spec_.beta2), one_m_b2 = static_cast<float>(1.0 - spec_.beta2);
  const float eps = static_cast<float>(spec_.eps);
  const float wd = static_cast<float>(spec_.weight_decay);
  const float shrink = static_cast<float>(1.0 - lr * spec_.weight_decay);
  const bool coupled_wd = !decoupled && spec_.weight_decay != 0;
  const bool amsgrad = spec_.amsgrad;
  float* m = buf_a_.data();
  float* v = buf_b_.data();
  float* vmax = buf_c_.data();
  for (std::size_t k = k0; k < k1; ++k) {
    float pk = p[k];
    if (decoupled) pk = pk * shrink;
    float gk = g[k];
    if (coupled_wd) gk = gk + wd * pk;
    const float mk = m[k] * b1 + one_m_b1 * gk;
    const float vk = v[k] * b2 + one_m_b2 * gk * gk;
    m[k] = mk;
    v[k] = vk;
    float second = vk;
    if (amsgrad) {
      second = vmax[k] < vk ? vk : vmax[k];
      vmax[k] = second;
    }
    const float denom = std::sqrt(second) / bc2_sqrt + eps;
    p[k] = pk + neg_step_size * mk / denom;
  }
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
