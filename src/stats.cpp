// One-pass statistics in double, histograms, saturation counts and update:data (stats.h).
#include "makemore/stats.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace mm {

namespace {

// Shifted sums in double: with the shift near the mean, sum(d^2) - sum(d)^2/n loses nothing
// that matters even for gamma-like data (mean 1, std 1e-4).
template <class Get>
Moments moments_of(std::size_t n, Get get) {
  Moments m;
  double shift = 0, s = 0, ss = 0;
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  bool have_shift = false;
  for (std::size_t i = 0; i < n; ++i) {
    const float v = get(i);
    if (!std::isfinite(v)) {
      ++m.nonfinite;
      continue;
    }
    const double x = v;
    if (!have_shift) {
      shift = x;
      have_shift = true;
    }
    const double d = x - shift;
    s += d;
    ss += d * d;
    lo = std::min(lo, x);
    hi = std::max(hi, x);
    ++m.n;
  }
  if (m.n == 0) return m;
  const double nn = static_cast<double>(m.n);
  m.mean = shift + s / nn;
  m.std = m.n > 1 ? std::sqrt(std::max(0.0, (ss - s * s / nn) / (nn - 1))) : 0.0;
  m.min = lo;
  m.max = hi;
  return m;
}

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

double log10_ratio(double num, double den) {
  if (!(num > 0) || !(den > 0) || !std::isfinite(num) || !std::isfinite(den)) return kNaN;
  return std::log10(num / den);
}

}  // namespace

namespace {

// The vectorized path (Eigen reassociates the sums); the scalar one when a value is not finite.
template <class Expr>
Moments moments_fast(const Expr& e, std::size_t n, Moments (*slow)(const void*, std::size_t), const void* ctx) {
  Moments m;
  if (n == 0) return m;
  const double shift = e(0);
  if (!std::isfinite(shift)) return slow(ctx, n);
  const auto d = e.template cast<double>() - shift;
  const double s = d.sum(), ss = d.square().sum();
  if (!std::isfinite(s) || !std::isfinite(ss)) return slow(ctx, n);
  const double nn = static_cast<double>(n);
  m.n = static_cast<int64_t>(n);
  m.mean = shift + s / nn;
  m.std = n > 1 ? std::sqrt(std::max(0.0, (ss - s * s / nn) / (nn - 1))) : 0.0;
  m.min = e.minCoeff();
  m.max = e.maxCoeff();
  return m;
}

using ArrF = Eigen::Array<float, Eigen::Dynamic, 1>;

Moments moments_slow(const void* ctx, std::size_t n) {
  const float* x = static_cast<const float*>(ctx);
  return moments_of(n, [x](std::size_t i) { return x[i]; });
}

// std(a) and std(a - b) in one pass over both arrays, for the every-step update ratios: four
// independent double lanes per sum so the compiler can vectorize without reassociating.
void update_stds(const float* a, const float* b, std::size_t n, double* sd_data, double* sd_update) {
  *sd_data = *sd_update = kNaN;
  if (n < 2) return;
  const double sa = a[0], su = static_cast<double>(a[0] - b[0]);
  double s1[4] = {0, 0, 0, 0}, q1[4] = {0, 0, 0, 0}, s2[4] = {0, 0, 0, 0}, q2[4] = {0, 0, 0, 0};
  std::size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    for (std::size_t l = 0; l < 4; ++l) {
      const double x = static_cast<double>(a[i + l]) - sa;
      const double u = static_cast<double>(a[i + l] - b[i + l]) - su;
      s1[l] += x;
      q1[l] += x * x;
      s2[l] += u;
      q2[l] += u * u;
    }
  }
  for (; i < n; ++i) {
    const double x = static_cast<double>(a[i]) - sa;
    const double u = static_cast<double>(a[i] - b[i]) - su;
    s1[0] += x;
    q1[0] += x * x;
    s2[0] += u;
    q2[0] += u * u;
  }
  const double nn = static_cast<double>(n);
  const double S1 = s1[0] + s1[1] + s1[2] + s1[3], Q1 = q1[0] + q1[1] + q1[2] + q1[3];
  const double S2 = s2[0] + s2[1] + s2[2] + s2[3], Q2 = q2[0] + q2[1] + q2[2] + q2[3];
  *sd_data = std::sqrt(std::max(0.0, (Q1 - S1 * S1 / nn) / (nn - 1)));
  *sd_update = std::sqrt(std::max(0.0, (Q2 - S2 * S2 / nn) / (nn - 1)));
}

}  // namespace

Moments moments(const float* x, std::size_t n) {
  const Eigen::Map<const ArrF> X(x, static_cast<Eigen::Index>(n));
  return moments_fast(X, n, moments_slow, x);
}

void Welford::add(double x) {
  ++n_;
  const double d = x - mean_;
  mean_ += d / static_cast<double>(n_);
  m2_ += d * (x - mean_);
}

double Welford::std() const { return std::sqrt(var()); }

Histogram histogram(const float* x, std::size_t n, int bins, double lo, double hi) {
  Histogram h;
  if (bins < 1) bins = 1;
  // A usable range is finite with a finite, non-zero scale; anything else (none given, an
  // infinite bound, NaN, a width that overflows or underflows) would give NaN bin indices.
  const auto usable = [bins](double a, double b) {
    return a < b && std::isfinite(b - a) && std::isfinite(static_cast<double>(bins) / (b - a));
  };
  if (!usable(lo, hi)) {  // the finite values' own range
    const Moments m = moments(x, n);
    lo = m.min;
    hi = m.max;
    if (!usable(lo, hi)) {  // constant (or empty): a unit-wide range around the value
      lo -= 0.5;
      hi += 0.5;
    }
  }
  h.lo = lo;
  h.hi = hi;
  h.counts.assign(static_cast<std::size_t>(bins), 0);
  const double scale = static_cast<double>(bins) / (hi - lo);
  for (std::size_t i = 0; i < n; ++i) {
    if (!std::isfinite(x[i])) continue;
    const double k = std::floor((static_cast<double>(x[i]) - lo) * scale);
    // Compared before the cast: a double outside size_t's range (or NaN) must never reach it.
    const std::size_t b = k >= static_cast<double>(bins - 1) ? static_cast<std::size_t>(bins - 1)
                          : k > 0                            ? static_cast<std::size_t>(k)
                                                             : 0;
    ++h.counts[b];
  }
  return h;
}

SaturationScale SaturationScale::of(double lo, double hi) {
  return {static_cast<float>((lo + hi) / 2), static_cast<float>(2 / (hi - lo))};
}

int count_dead_columns(const Mat& t, float threshold, SaturationScale s) {
  if (t.rows() == 0) return 0;
  std::vector<char> dead(static_cast<std::size_t>(t.cols()), 1);
  for (Eigen::Index r = 0; r < t.rows(); ++r)
    for (Eigen::Index c = 0; c < t.cols(); ++c)
      if (!(std::fabs((t(r, c) - s.center) * s.scale) > threshold)) dead[static_cast<std::size_t>(c)] = 0;
  return static_cast<int>(std::count(dead.begin(), dead.end(), 1));
}

double fraction_beyond(const float* x, std::size_t n, float threshold, SaturationScale s) {
  if (n == 0) return 0;
  std::size_t k = 0;
  for (std::size_t i = 0; i < n; ++i) k += std::fabs((x[i] - s.center) * s.scale) > threshold ? 1 : 0;
  return static_cast<double>(k) / static_cast<double>(n);
}

double update_data_log10(const float* after, const float* before, std::size_t n) {
  double sd_data, sd_update;
  update_stds(after, before, n, &sd_data, &sd_update);
  return log10_ratio(sd_update, sd_data);
}

std::vector<double> loss_buckets(const std::vector<float>& losses, std::size_t bucket) {
  std::vector<double> out;
  if (bucket == 0) return out;
  for (std::size_t i = 0; i < losses.size(); i += bucket) {
    Welford w;
    for (std::size_t j = i; j < std::min(losses.size(), i + bucket); ++j)
      if (std::isfinite(losses[j])) w.add(losses[j]);
    out.push_back(w.count() ? w.mean() : kNaN);
  }
  return out;
}

}  // namespace mm
