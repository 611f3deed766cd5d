// Statistics the diagnostics are made of: one-pass moments (double sums around a shift), a
// running mean for losses, histograms, the saturation of a bounded activation, update:data.
// Plain functions over float arrays; what to measure and when is the observer's (snapshot.h).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "makemore/tensor.h"

namespace mm {

// mean, std (unbiased, as torch's .std()), min/max of the finite values, in one pass. Sums are
// taken in double around a shift (the first finite value), so a large mean costs no precision.
struct Moments {
  double mean = 0, std = 0, min = 0, max = 0;
  int64_t n = 0;          // finite values
  int64_t nonfinite = 0;  // NaN / inf, left out of everything else
};
Moments moments(const float* x, std::size_t n);

// Welford's running mean / variance, for values that arrive one at a time (losses).
class Welford {
 public:
  void add(double x);
  int64_t count() const { return n_; }
  double mean() const { return mean_; }
  double var() const { return n_ > 1 ? m2_ / static_cast<double>(n_ - 1) : 0.0; }
  double std() const;

 private:
  int64_t n_ = 0;
  double mean_ = 0, m2_ = 0;
};

// counts[k] holds values in [lo + k w, lo + (k+1) w); values outside [lo, hi] go to the edge
// bins so the counts sum to the finite values. lo >= hi: the range is taken from the data.
struct Histogram {
  double lo = 0, hi = 0;
  std::vector<int64_t> counts;
};
Histogram histogram(const float* x, std::size_t n, int bins, double lo = 0, double hi = 0);

// Where a bounded activation saturates: |u| > threshold for u = (x - center) * scale, its output
// mapped from [lo, hi] onto [-1, 1] (a tanh's own value, 2s - 1 for a sigmoid), so one threshold
// means the same share of the peak local gradient for every bounded kind: 1 - u^2 is tanh's
// 1 - t^2 and sigmoid's 4 s (1 - s). The default is a tanh's [-1, 1].
struct SaturationScale {
  float center = 0.0f, scale = 1.0f;
  static SaturationScale of(double lo, double hi);
};
// Columns of a (rows, cols) matrix where |u| > threshold in every row: the lecture's
// "whole column white" in the saturation map, units that pass no gradient for any example.
int count_dead_columns(const Mat& t, float threshold = 0.99f, SaturationScale s = {});
double fraction_beyond(const float* x, std::size_t n, float threshold, SaturationScale s = {});  // share of |u| > t
// log10(std(after - before) / std(after)), the lecture's update:data ratio of one parameter, in
// one pass over both arrays; NaN when either std is 0 or not finite.
double update_data_log10(const float* after, const float* before, std::size_t n);

// Mean loss over consecutive chunks of `bucket` steps (the last chunk may be shorter).
std::vector<double> loss_buckets(const std::vector<float>& losses, std::size_t bucket = 1000);

}  // namespace mm
