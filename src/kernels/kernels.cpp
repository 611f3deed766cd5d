// The numerical kernels of the training step, compiled once per instruction set (kernels.h says
// how they are built and chosen). The code is what layers.cpp, token_linear.cpp, gemm.cpp,
// optim.cpp and perf.cpp ran in place before, unchanged: compiled with the same instructions as
// a -march=native build of the same CPU, each set gives the same bits as that build.
#include "kernels.h"

#include <Eigen/Core>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#if defined(__AVX512F__) || defined(__FMA__)
#include <immintrin.h>
#endif

#ifndef MM_KERNEL_SET
#error "MM_KERNEL_SET (avx512, avx2, generic or native) must be defined: CMakeLists.txt compiles this file once per set"
#endif
#define MM_STR2(x) #x
#define MM_STR(x) MM_STR2(x)

namespace mm::kernels::MM_KERNEL_SET {

namespace {

using AlignedArray = Eigen::Map<Eigen::ArrayXf, Eigen::Aligned64>;
using ConstAlignedArray = Eigen::Map<const Eigen::ArrayXf, Eigen::Aligned64>;

// ---- Embedding, bias --------------------------------------------------------------------
void embedding_rows(const float* C, const int32_t* tokens, std::size_t n, std::size_t width, float* out) {
#if defined(__AVX512F__)
  if (width <= 16) {  // the lecture's rows (10 or 2 floats): one masked load and store each
    const auto m = static_cast<__mmask16>((1u << width) - 1u);
    for (std::size_t r = 0; r < n; ++r)
      _mm512_mask_storeu_ps(out + r * width, m, _mm512_maskz_loadu_ps(m, C + static_cast<std::size_t>(tokens[r]) * width));
    return;
  }
#endif
  for (std::size_t r = 0; r < n; ++r) std::copy_n(C + static_cast<std::size_t>(tokens[r]) * width, width, out + r * width);
}

void embedding_scatter(float* dC, std::size_t vocab, std::size_t width, const int32_t* tokens, std::size_t n, const float* src) {
  std::fill_n(dC, vocab * width, 0.0f);
  for (std::size_t r = 0; r < n; ++r) {
    float* __restrict dst = dC + static_cast<std::size_t>(tokens[r]) * width;
    const float* __restrict row = src + r * width;
    for (std::size_t c = 0; c < width; ++c) dst[c] += row[c];
  }
}

// out = x + b, row by row: + b after the product, as the lecture's x @ W + b rounds (adding
// the bias first, as the product's starting value, saves a pass but moves lecture-original's
// final losses).
void add_bias_rows(float* out, int rows, int cols, const float* __restrict b) {
  for (int r = 0; r < rows; ++r) {
    float* __restrict o = out + static_cast<std::ptrdiff_t>(r) * cols;
    for (int c = 0; c < cols; ++c) o[c] += b[c];
  }
}

// ---- BatchNorm1d ------------------------------------------------------------------------
#if defined(__AVX512F__)
// Column reductions over the rows of an (n, C) block with up to 128 columns' accumulators held
// in registers for the whole pass (the plain row loop keeps them in memory, and each row waits
// on the previous row's stores). Per column the rows are added in order, with the same
// operations as the scalar loops below (GCC contracts those to FMAs too), so the bits agree.
// term(acc, r, c, mask) returns acc plus row r's term for columns c..c+15 (lanes in mask).
template <int NV, class Term>
void column_pass(Eigen::Index n, Eigen::Index c0, Eigen::Index C, float* __restrict out, Term term) {
  __m512 acc[NV];
  __mmask16 mask[NV];
  for (int v = 0; v < NV; ++v) {
    acc[v] = _mm512_setzero_ps();
    const Eigen::Index left = C - c0 - 16 * v;
    mask[v] = left >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << left) - 1u);
  }
  for (Eigen::Index r = 0; r < n; ++r)
    for (int v = 0; v < NV; ++v) acc[v] = term(acc[v], r, c0 + 16 * v, mask[v]);
  for (int v = 0; v < NV; ++v) _mm512_mask_storeu_ps(out + c0 + 16 * v, mask[v], acc[v]);
}
template <class Term>
void column_reduce(Eigen::Index n, Eigen::Index C, float* __restrict out, Term term) {
  for (Eigen::Index c0 = 0; c0 < C; c0 += 128) {
    switch ((std::min<Eigen::Index>(C - c0, 128) + 15) / 16) {
      case 1:
        column_pass<1>(n, c0, C, out, term);
        break;
      case 2:
        column_pass<2>(n, c0, C, out, term);
        break;
      case 3:
        column_pass<3>(n, c0, C, out, term);
        break;
      case 4:
        column_pass<4>(n, c0, C, out, term);
        break;
      case 5:
        column_pass<5>(n, c0, C, out, term);
        break;
      case 6:
        column_pass<6>(n, c0, C, out, term);
        break;
      case 7:
        column_pass<7>(n, c0, C, out, term);
        break;
      default:
        column_pass<8>(n, c0, C, out, term);
        break;
    }
  }
}
#endif

// sum[c] = sum over rows of x[r][c], rows in order (rows ld floats apart).
void column_sums_ld(const float* __restrict x, Eigen::Index n, Eigen::Index C, Eigen::Index ld, float* __restrict sum) {
#if defined(__AVX512F__)
  column_reduce(n, C, sum, [x, ld](__m512 acc, Eigen::Index r, Eigen::Index c, __mmask16 m) {
    return _mm512_add_ps(acc, _mm512_maskz_loadu_ps(m, x + r * ld + c));
  });
#else
  std::fill_n(sum, C, 0.0f);
  for (Eigen::Index r = 0; r < n; ++r)
    for (Eigen::Index c = 0; c < C; ++c) sum[c] += x[r * ld + c];
#endif
}
void column_sums(const float* x, Eigen::Index n, Eigen::Index C, float* sum) { column_sums_ld(x, n, C, C, sum); }

// var[c] = sum over rows of (x[r][c] - mean[c])^2, rows in order.
void column_centered_squares(const float* __restrict x, const float* __restrict mean, Eigen::Index n, Eigen::Index C,
                             Eigen::Index ld, float* __restrict var) {
#if defined(__AVX512F__)
  column_reduce(n, C, var, [x, mean, ld](__m512 acc, Eigen::Index r, Eigen::Index c, __mmask16 m) {
    const __m512 d = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + r * ld + c), _mm512_maskz_loadu_ps(m, mean + c));
    return _mm512_fmadd_ps(d, d, acc);
  });
#else
  std::fill_n(var, C, 0.0f);
  for (Eigen::Index r = 0; r < n; ++r)
    for (Eigen::Index c = 0; c < C; ++c) {
      const float d = x[r * ld + c] - mean[c];
      var[c] += d * d;
    }
#endif
}

// dgamma[c] = sum of d * xhat, dbeta[c] = sum of d over the rows, in order.
void grad_sums(const float* __restrict d, const float* __restrict xhat, Eigen::Index n, Eigen::Index C, Eigen::Index ld,
               float* __restrict dgamma, float* __restrict dbeta) {
#if defined(__AVX512F__)
  column_reduce(n, C, dgamma, [d, xhat, ld](__m512 acc, Eigen::Index r, Eigen::Index c, __mmask16 m) {
    return _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, d + r * ld + c), _mm512_maskz_loadu_ps(m, xhat + r * ld + c), acc);
  });
  column_sums_ld(d, n, C, ld, dbeta);
#else
  std::fill_n(dgamma, C, 0.0f);
  std::fill_n(dbeta, C, 0.0f);
  for (Eigen::Index r = 0; r < n; ++r)
    for (Eigen::Index c = 0; c < C; ++c) {
      dgamma[c] += d[r * ld + c] * xhat[r * ld + c];
      dbeta[c] += d[r * ld + c];
    }
#endif
}

// Row kernels with non-aliasing pointers, so the compiler vectorizes them over the features.
void normalize_row(const float* __restrict x, const float* __restrict mean, const float* __restrict inv,
                   const float* __restrict gamma, const float* __restrict beta, float* __restrict xhat, float* __restrict out,
                   Eigen::Index C) {
#if defined(__AVX512F__)
  // 16 features at a time, the last block masked (the compiler's own loop ends in scalars).
  for (Eigen::Index c = 0; c < C; c += 16) {
    const auto m = static_cast<__mmask16>(C - c >= 16 ? 0xFFFF : (1u << (C - c)) - 1u);
    const __m512 h = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + c), _mm512_maskz_loadu_ps(m, mean + c)),
                                   _mm512_maskz_loadu_ps(m, inv + c));
    _mm512_mask_storeu_ps(xhat + c, m, h);
    _mm512_mask_storeu_ps(out + c, m,
                          _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, gamma + c), h, _mm512_maskz_loadu_ps(m, beta + c)));
  }
#else
  for (Eigen::Index c = 0; c < C; ++c) {
    const float h = (x[c] - mean[c]) * inv[c];
    xhat[c] = h;
    out[c] = gamma[c] * h + beta[c];
  }
#endif
}
void normalize_row_out(const float* __restrict x, const float* __restrict mean, const float* __restrict inv,
                       const float* __restrict gamma, const float* __restrict beta, float* __restrict out, Eigen::Index C) {
  for (Eigen::Index c = 0; c < C; ++c) out[c] = gamma[c] * ((x[c] - mean[c]) * inv[c]) + beta[c];
}
// var /= div; inv = 1 / sqrt(var + eps); the running statistics' moving averages.
void bn_statistics(float* __restrict var, float* __restrict inv, float* __restrict rmean, float* __restrict rstat,
                   const float* __restrict mean, float div, float eps, float keep, float m, bool running_std, Eigen::Index C) {
  for (Eigen::Index c = 0; c < C; ++c) var[c] /= div;
  // the divisor, for now (Eigen's sqrt: vectorized, where std::sqrt's errno path is not)
  Eigen::Map<Eigen::ArrayXf>(inv, C) = (Eigen::Map<const Eigen::ArrayXf>(var, C) + eps).sqrt();
  for (Eigen::Index c = 0; c < C; ++c) rmean[c] = keep * rmean[c] + m * mean[c];
  if (running_std) {
    for (Eigen::Index c = 0; c < C; ++c) rstat[c] = keep * rstat[c] + m * inv[c];
  } else {
    for (Eigen::Index c = 0; c < C; ++c) rstat[c] = keep * rstat[c] + m * var[c];
  }
  for (Eigen::Index c = 0; c < C; ++c) inv[c] = 1.0f / inv[c];
}
void bn_dx_row(float* __restrict dx, const float* __restrict d, const float* __restrict xhat, const float* __restrict a,
               const float* __restrict b, const float* __restrict c0, Eigen::Index C) {
#if defined(__AVX512F__)
  // a d - (b xhat) in one rounding, then - c0: the operations GCC makes of the loop below.
  for (Eigen::Index c = 0; c < C; c += 16) {
    const auto m = static_cast<__mmask16>(C - c >= 16 ? 0xFFFF : (1u << (C - c)) - 1u);
    const __m512 bx = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, b + c), _mm512_maskz_loadu_ps(m, xhat + c));
    const __m512 v = _mm512_fmsub_ps(_mm512_maskz_loadu_ps(m, a + c), _mm512_maskz_loadu_ps(m, d + c), bx);
    _mm512_mask_storeu_ps(dx + c, m, _mm512_sub_ps(v, _mm512_maskz_loadu_ps(m, c0 + c)));
  }
#else
  for (Eigen::Index c = 0; c < C; ++c) dx[c] = a[c] * d[c] - b[c] * xhat[c] - c0[c];
#endif
}
void scale_row(float* __restrict dx, const float* __restrict d, const float* __restrict a, Eigen::Index C) {
  for (Eigen::Index c = 0; c < C; ++c) dx[c] = d[c] * a[c];
}

void bn_statistics_all(const float* x, Index n, Index C, Index ld, float* mean, float* var, float* inv, float* rmean,
                       float* rstat, float div, float eps, float keep, float m, bool running_std) {
  column_sums_ld(x, n, C, ld, mean);
  const float inv_n = 1.0f / static_cast<float>(n);
  for (Index c = 0; c < C; ++c) mean[c] *= inv_n;
  column_centered_squares(x, mean, n, C, ld, var);
  bn_statistics(var, inv, rmean, rstat, mean, div, eps, keep, m, running_std, C);
}

void bn_normalize(const float* x, Index n, Index C, Index ld, const float* mean, const float* inv, const float* gamma,
                  const float* beta, float* xhat, float* out) {
  if (xhat) {
    for (Index r = 0; r < n; ++r) normalize_row(x + r * ld, mean, inv, gamma, beta, xhat + r * ld, out + r * ld, C);
  } else {
    for (Index r = 0; r < n; ++r) normalize_row_out(x + r * ld, mean, inv, gamma, beta, out + r * ld, C);
  }
}

void bn_dx(const float* d, const float* xhat, Index n, Index C, Index ld, const float* a, const float* b, const float* c0,
           float* dx) {
  if (!b) {
    for (Index r = 0; r < n; ++r) scale_row(dx + r * ld, d + r * ld, a, C);
    return;
  }
  for (Index r = 0; r < n; ++r) bn_dx_row(dx + r * ld, d + r * ld, xhat + r * ld, a, b, c0, C);
}

// ---- GroupNorm / LayerNorm, residual sums -------------------------------------------------
using RowMajorArray = Eigen::Array<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using RowArray = Eigen::Array<float, 1, Eigen::Dynamic>;

// Per row r and group g of K = C/G features: mu = mean, v = biased variance (sums in double),
// xhat = (x - mu) / sqrt(v + eps), out = gamma * xhat + beta.
// Each row's sums are added feature by feature in double, a chain of K dependent adds; R rows
// go side by side (their chains independent, so the core overlaps them) and every row's sums
// keep their order: the same bits as one row at a time.
template <int R>
void group_norm_rows(const float* x, Index C, Index G, double eps, float* xhat, float* inv_std) {
  const Index K = C / G;
  for (Index g = 0; g < G; ++g) {
    double sum[R] = {}, mu[R], ss[R] = {}, rstd[R];
    for (Index k = g * K; k < (g + 1) * K; ++k)
      for (int j = 0; j < R; ++j) sum[j] += x[j * C + k];
    for (int j = 0; j < R; ++j) mu[j] = sum[j] / static_cast<double>(K);
    for (Index k = g * K; k < (g + 1) * K; ++k)
      for (int j = 0; j < R; ++j) ss[j] += (x[j * C + k] - mu[j]) * (x[j * C + k] - mu[j]);
    for (int j = 0; j < R; ++j) {
      rstd[j] = 1.0 / std::sqrt(ss[j] / static_cast<double>(K) + eps);
      inv_std[j * G + g] = static_cast<float>(rstd[j]);
    }
    for (int j = 0; j < R; ++j)
      for (Index k = g * K; k < (g + 1) * K; ++k) xhat[j * C + k] = static_cast<float>((x[j * C + k] - mu[j]) * rstd[j]);
  }
}

#if defined(__AVX512F__)
// The first w (1-8) floats at p, zeros after them; and their store.
inline __mmask8 lanes8(Index w) { return static_cast<__mmask8>((1u << w) - 1u); }
inline __m256 load8(const float* p, Index w) { return w >= 8 ? _mm256_loadu_ps(p) : _mm256_maskz_loadu_ps(lanes8(w), p); }
inline void store8(float* p, __m256 v, Index w) {
  if (w >= 8)
    _mm256_storeu_ps(p, v);
  else
    _mm256_mask_storeu_ps(p, lanes8(w), v);
}

// Columns k..k+w-1 (w <= 8) of 8 rows (leading dimension ld) as vectors of doubles, one per
// column, lane j holding row j's value: an 8 x 8 transpose of the floats in 256-bit registers
// (cheaper shuffles than 512-bit ones of doubles), each column then widened (c[w..7] are zeros).
inline void columns8(const float* x, Index ld, Index w, __m512d* c) {
  __m256 r[8];
  for (int j = 0; j < 8; ++j) r[j] = load8(x + j * ld, w);
  const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);  // (r0[0] r1[0] r0[1] r1[1]) ..
  const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);  // rows 0-3 of columns 0, 1 (4, 5)
  const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);  // columns 2, 3 (6, 7)
  const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);  // rows 4-7
  const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  c[0] = _mm512_cvtps_pd(_mm256_permute2f128_ps(u0, u4, 0x20));
  c[1] = _mm512_cvtps_pd(_mm256_permute2f128_ps(u1, u5, 0x20));
  c[2] = _mm512_cvtps_pd(_mm256_permute2f128_ps(u2, u6, 0x20));
  c[3] = _mm512_cvtps_pd(_mm256_permute2f128_ps(u3, u7, 0x20));
  c[4] = _mm512_cvtps_pd(_mm256_permute2f128_ps(u0, u4, 0x31));
  c[5] = _mm512_cvtps_pd(_mm256_permute2f128_ps(u1, u5, 0x31));
  c[6] = _mm512_cvtps_pd(_mm256_permute2f128_ps(u2, u6, 0x31));
  c[7] = _mm512_cvtps_pd(_mm256_permute2f128_ps(u3, u7, 0x31));
}

double* norm_tile(std::size_t doubles) {
  thread_local std::vector<double, Eigen::aligned_allocator<double>> tile;
  if (tile.size() < doubles) tile.resize(doubles);
  return tile.data();
}

// group_norm_rows<8> for NB blocks of 8 rows, each row in a lane of its block's vectors: lane j
// runs row j's operations in row j's order (its sums feature by feature, with the fused
// multiply-add the compiler makes of the scalar code), so the bits are those of one row at a
// time (NormKernels.BlocksOfRowsGiveOneRowAtATimesBits). The NB blocks' chains of dependent adds
// overlap. Any K (features per group): a group's last K % 8 features through masked loads.
// out = gamma * xhat + beta is written as each xhat is, in one rounding: the fused multiply-add
// GCC makes of group_norm_forward's Eigen expression for the other rows (the test above holds
// the two to the same bits).
template <int NB>
void group_norm_blocks(const float* x, Index C, Index G, double eps, const float* gamma, const float* beta, float* xhat,
                       float* inv_std, float* out) {
  const Index K = C / G;
  double* tile = norm_tile(static_cast<std::size_t>(NB * K * 8));
  const __m512d vK = _mm512_set1_pd(static_cast<double>(K)), veps = _mm512_set1_pd(eps), one = _mm512_set1_pd(1.0);
  for (Index g = 0; g < G; ++g) {
    __m512d sum[NB], ss[NB], mu[NB];
    for (int b = 0; b < NB; ++b) sum[b] = ss[b] = _mm512_setzero_pd();
    // The columns into the tile (for the second pass), their sums taken on the way.
    for (Index k = 0; k < K; k += 8) {
      const Index w = std::min<Index>(8, K - k);
      for (int b = 0; b < NB; ++b) {
        __m512d c[8];
        columns8(x + b * 8 * C + g * K + k, C, w, c);
        for (Index i = 0; i < w; ++i) {
          _mm512_store_pd(tile + (b * K + k + i) * 8, c[i]);
          sum[b] = _mm512_add_pd(sum[b], c[i]);
        }
      }
    }
    for (int b = 0; b < NB; ++b) mu[b] = _mm512_div_pd(sum[b], vK);
    for (Index k = 0; k < K; ++k)
      for (int b = 0; b < NB; ++b) {
        const __m512d d = _mm512_sub_pd(_mm512_load_pd(tile + (b * K + k) * 8), mu[b]);
        ss[b] = _mm512_fmadd_pd(d, d, ss[b]);
      }
    for (int b = 0; b < NB; ++b) {
      alignas(64) double mu_j[8], rstd_j[8];
      _mm512_store_pd(mu_j, mu[b]);
      _mm512_store_pd(rstd_j, _mm512_div_pd(one, _mm512_sqrt_pd(_mm512_add_pd(_mm512_div_pd(ss[b], vK), veps))));
      for (int j = 0; j < 8; ++j) {
        const Index row = b * 8 + j;
        inv_std[row * G + g] = static_cast<float>(rstd_j[j]);
        const __m512d m = _mm512_set1_pd(mu_j[j]), r = _mm512_set1_pd(rstd_j[j]);
        for (Index k = g * K; k < (g + 1) * K; k += 8) {
          const Index w = std::min<Index>(8, (g + 1) * K - k);
          const __m256 h = _mm512_cvtpd_ps(_mm512_mul_pd(_mm512_sub_pd(_mm512_cvtps_pd(load8(x + row * C + k, w)), m), r));
          store8(xhat + row * C + k, h, w);
          store8(out + row * C + k, gamma ? _mm256_fmadd_ps(h, load8(gamma + k, w), load8(beta + k, w)) : h, w);
        }
      }
    }
  }
}
#endif

void group_norm_forward(const float* x, Index n, Index C, Index G, double eps, const float* gamma, const float* beta, float* xhat,
                        float* inv_std, float* out) {
  constexpr int R = 8;
  Index r = 0;
#if defined(__AVX512F__)
  {
    for (; r + 4 * R <= n; r += 4 * R)
      group_norm_blocks<4>(x + r * C, C, G, eps, gamma, beta, xhat + r * C, inv_std + r * G, out + r * C);
    for (; r + R <= n; r += R)
      group_norm_blocks<1>(x + r * C, C, G, eps, gamma, beta, xhat + r * C, inv_std + r * G, out + r * C);
  }
#endif
  const Index done = r;  // rows whose out is written
  for (; r + R <= n; r += R) group_norm_rows<R>(x + r * C, C, G, eps, xhat + r * C, inv_std + r * G);
  for (; r < n; ++r) group_norm_rows<1>(x + r * C, C, G, eps, xhat + r * C, inv_std + r * G);
  if (done == n) return;
  Eigen::Map<RowMajorArray> o(out + done * C, n - done, C);
  const Eigen::Map<const RowMajorArray> h(xhat + done * C, n - done, C);
  if (gamma) {
    o = (h.rowwise() * Eigen::Map<const RowArray>(gamma, C)).rowwise() + Eigen::Map<const RowArray>(beta, C);
  } else {
    o = h;
  }
}

// dx of R rows side by side (as group_norm_rows: every row's sums in their own order).
template <int R, bool Affine>
void group_norm_dx_rows(const float* dout, const float* xhat, const float* inv_std, Index C, Index G, const float* gamma,
                        float* dx) {
  const Index K = C / G;
  auto gk = [&](int j, Index k) -> double {
    if constexpr (Affine)
      return static_cast<double>(dout[j * C + k]) * gamma[k];
    else
      return dout[j * C + k];
  };
  for (Index g = 0; g < G; ++g) {
    double sg[R] = {}, sgx[R] = {}, mg[R], mgx[R];
    for (Index k = g * K; k < (g + 1) * K; ++k)
      for (int j = 0; j < R; ++j) {
        sg[j] += gk(j, k);
        sgx[j] += gk(j, k) * xhat[j * C + k];
      }
    for (int j = 0; j < R; ++j) {
      mg[j] = sg[j] / static_cast<double>(K);
      mgx[j] = sgx[j] / static_cast<double>(K);
    }
    for (int j = 0; j < R; ++j) {
      const double s = inv_std[j * G + g];
      for (Index k = g * K; k < (g + 1) * K; ++k)
        dx[j * C + k] = static_cast<float>(s * (gk(j, k) - mg[j] - xhat[j * C + k] * mgx[j]));
    }
  }
}

#if defined(__AVX512F__)
// group_norm_dx_rows<8, Affine> for NB blocks of 8 rows, a row per lane (as group_norm_blocks):
// each lane's sums in its row's order, and the fused multiply-adds the compiler makes of the
// scalar expressions: g * xhat added to sgx; g = dout * gamma fused into g - mean(g); the
// subtraction of xhat * mean(g * xhat) fused. Any K, as group_norm_blocks.
template <int NB, bool Affine>
void group_norm_dx_blocks(const float* dout, const float* xhat, const float* inv_std, Index C, Index G, const float* gamma,
                          float* dx) {
  const Index K = C / G, K8 = (K + 7) / 8 * 8;
  double* gam = norm_tile(static_cast<std::size_t>(K8));  // the group's gamma in double, zeros after K
  const __m512d vK = _mm512_set1_pd(static_cast<double>(K));
  for (Index g = 0; g < G; ++g) {
    if constexpr (Affine)
      for (Index k = 0; k < K8; ++k) gam[k] = k < K ? static_cast<double>(gamma[g * K + k]) : 0.0;
    __m512d sg[NB], sgx[NB];
    for (int b = 0; b < NB; ++b) sg[b] = sgx[b] = _mm512_setzero_pd();
    // The sums straight from the transposed columns, 8 features at a time, each lane in order.
    auto add_columns = [&](int b, const __m512d* cd, const __m512d* ch, Index k, auto w) {
      for (Index i = 0; i < w; ++i) {
        __m512d gk = cd[i];
        if constexpr (Affine) gk = _mm512_mul_pd(gk, _mm512_set1_pd(gam[k + i]));
        sg[b] = _mm512_add_pd(sg[b], gk);
        sgx[b] = _mm512_fmadd_pd(gk, ch[i], sgx[b]);
      }
    };
    for (Index k = 0; k < K; k += 8) {
      const Index w = std::min<Index>(8, K - k);
      for (int b = 0; b < NB; ++b) {
        __m512d cd[8], ch[8];
        columns8(dout + b * 8 * C + g * K + k, C, w, cd);
        columns8(xhat + b * 8 * C + g * K + k, C, w, ch);
        if (w == 8)
          add_columns(b, cd, ch, k, std::integral_constant<Index, 8>{});
        else
          add_columns(b, cd, ch, k, w);
      }
    }
    for (int b = 0; b < NB; ++b) {
      alignas(64) double mg[8], mgx[8];
      _mm512_store_pd(mg, _mm512_div_pd(sg[b], vK));
      _mm512_store_pd(mgx, _mm512_div_pd(sgx[b], vK));
      for (int j = 0; j < 8; ++j) {
        const Index row = b * 8 + j;
        const __m512d s = _mm512_set1_pd(static_cast<double>(inv_std[row * G + g]));
        const __m512d m = _mm512_set1_pd(mg[j]), mx = _mm512_set1_pd(mgx[j]);
        for (Index k = 0; k < K; k += 8) {
          const Index n = std::min<Index>(8, K - k), at = row * C + g * K + k;
          const __m512d d = _mm512_cvtps_pd(load8(dout + at, n));
          const __m512d h = _mm512_cvtps_pd(load8(xhat + at, n));
          __m512d w;
          if constexpr (Affine)
            w = _mm512_fmsub_pd(d, _mm512_load_pd(gam + k), m);
          else
            w = _mm512_sub_pd(d, m);
          store8(dx + at, _mm512_cvtpd_ps(_mm512_mul_pd(s, _mm512_fnmadd_pd(h, mx, w))), n);
        }
      }
    }
  }
}
#endif

template <bool Affine>
void group_norm_dx(const float* dout, const float* xhat, const float* inv_std, Index n, Index C, Index G, const float* gamma,
                   float* dx) {
  constexpr int R = 8;
  Index r = 0;
#if defined(__AVX512F__)
  {
    for (; r + 4 * R <= n; r += 4 * R)
      group_norm_dx_blocks<4, Affine>(dout + r * C, xhat + r * C, inv_std + r * G, C, G, gamma, dx + r * C);
    for (; r + R <= n; r += R)
      group_norm_dx_blocks<1, Affine>(dout + r * C, xhat + r * C, inv_std + r * G, C, G, gamma, dx + r * C);
  }
#endif
  for (; r + R <= n; r += R) group_norm_dx_rows<R, Affine>(dout + r * C, xhat + r * C, inv_std + r * G, C, G, gamma, dx + r * C);
  for (; r < n; ++r) group_norm_dx_rows<1, Affine>(dout + r * C, xhat + r * C, inv_std + r * G, C, G, gamma, dx + r * C);
}

// With g = dout * gamma, per row and group (K features, s = 1/sqrt(v + eps)):
//   dx = s * (g - mean(g) - xhat * mean(g * xhat));  dgamma = sum_rows(dout * xhat), dbeta = sum_rows(dout).
void group_norm_backward(const float* dout, const float* xhat, const float* inv_std, Index n, Index C, Index G,
                         const float* gamma, float* dgamma, float* dbeta, float* dx) {
  const Eigen::Map<const RowMajorArray, Eigen::Aligned64> d(dout, n, C), h(xhat, n, C);
  if (gamma) {
    Eigen::Map<RowArray>(dgamma, C) = (d * h).colwise().sum();
    Eigen::Map<RowArray>(dbeta, C) = d.colwise().sum();
  }
  if (!dx) return;
  if (gamma)
    group_norm_dx<true>(dout, xhat, inv_std, n, C, G, gamma, dx);
  else
    group_norm_dx<false>(dout, xhat, inv_std, n, C, G, gamma, dx);
}

void add(const float* a, const float* b, Index n, float* out) {
  AlignedArray(out, n) = ConstAlignedArray(a, n) + ConstAlignedArray(b, n);
}

bool all_finite(const float* x, Index n) {
  uint32_t bad = 0;
  for (Index i = 0; i < n; ++i) {
    uint32_t b;
    std::memcpy(&b, x + i, sizeof b);
    bad |= static_cast<uint32_t>((b & 0x7f800000u) == 0x7f800000u);  // exponent all ones: inf or NaN
  }
  return bad == 0;
}

// ---- Tanh -------------------------------------------------------------------------------

// Eigen's tanh packet by packet (the packets its array expression takes, so the same bits), with
// each packet's bits checked for an all-ones exponent (inf or NaN) on the way; the last n % P
// floats through the array expression, whose tail they are there too.
bool tanh_forward(const float* x, Index n, float* out) {
  using Packet = Eigen::internal::packet_traits<float>::type;
  constexpr Index P = sizeof(Packet) / sizeof(float);
  const Index whole = n / P * P;
  const Packet exponent = Eigen::internal::pset1<Packet>(std::numeric_limits<float>::infinity());
  Packet bad = Eigen::internal::pzero(exponent);
  for (Index i = 0; i < whole; i += P) {
    const Packet v = Eigen::internal::pload<Packet>(x + i);
    // (v & exponent bits) == exponent bits, as all ones in a lane where v is inf or NaN
    bad = Eigen::internal::por(bad, Eigen::internal::pcmp_eq(Eigen::internal::pand(v, exponent), exponent));
    Eigen::internal::pstore(out + i, Eigen::internal::ptanh(v));
  }
  if (whole < n)
    Eigen::Map<Eigen::ArrayXf>(out + whole, n - whole) = Eigen::Map<const Eigen::ArrayXf>(x + whole, n - whole).tanh();
  return !Eigen::internal::predux_any(bad) && all_finite(x + whole, n - whole);
}

// d tanh(x)/dx = 1 - tanh(x)^2: the cached output is all backward needs.
void tanh_backward(const float* dout, const float* out, Index n, float* dx) {
  AlignedArray(dx, n) = ConstAlignedArray(dout, n) * (1.0f - ConstAlignedArray(out, n).square());
}

// ---- Softmax ----------------------------------------------------------------------------
// p := exp(l - row max) for each row of logits (B, V), with each row's max and sum for the
// loss. The exp runs over the whole block at once so it is in full vectors rather than row
// by row with a scalar tail (27 = 16 + 11); the row max and sums are row loops in 16-float
// vectors with a masked tail (on AVX-512; plain loops elsewhere). A row's sum adds its exps in
// 16 lanes, then the lanes (the order differs from a sequential sum in the last bits).
void softmax_rows(const float* l, Index B, Index V, float* p, float* rmax, float* rsum) {
#if defined(__AVX512F__)
  const auto tail = static_cast<__mmask16>((1u << (V % 16)) - 1u);
  const Index full = V / 16 * 16;
  for (Index b = 0; b < B; ++b) {
    const float* lr = l + b * V;
    float* pr = p + b * V;
    __m512 m = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
    for (Index c = 0; c < full; c += 16) m = _mm512_max_ps(m, _mm512_loadu_ps(lr + c));
    if (tail) m = _mm512_mask_max_ps(m, tail, m, _mm512_maskz_loadu_ps(tail, lr + full));
    const float mx = _mm512_reduce_max_ps(m);
    rmax[b] = mx;
    const __m512 vm = _mm512_set1_ps(mx);
    for (Index c = 0; c < full; c += 16) _mm512_storeu_ps(pr + c, _mm512_sub_ps(_mm512_loadu_ps(lr + c), vm));
    if (tail) _mm512_mask_storeu_ps(pr + full, tail, _mm512_sub_ps(_mm512_maskz_loadu_ps(tail, lr + full), vm));
  }
  AlignedArray(p, B * V) = ConstAlignedArray(p, B * V).exp();  // contiguous: Eigen's vectorized exp
  for (Index b = 0; b < B; ++b) {
    const float* pr = p + b * V;
    __m512 s = _mm512_setzero_ps();
    for (Index c = 0; c < full; c += 16) s = _mm512_add_ps(s, _mm512_loadu_ps(pr + c));
    if (tail) s = _mm512_add_ps(s, _mm512_maskz_loadu_ps(tail, pr + full));
    rsum[b] = _mm512_reduce_add_ps(s);
  }
#else
  for (Index b = 0; b < B; ++b) {
    const float* lr = l + b * V;
    float mx = lr[0];
    for (Index c = 1; c < V; ++c) mx = std::max(mx, lr[c]);
    rmax[b] = mx;
    for (Index c = 0; c < V; ++c) p[b * V + c] = lr[c] - mx;
  }
  AlignedArray(p, B * V) = ConstAlignedArray(p, B * V).exp();
  Eigen::Map<Eigen::ArrayXf>(rsum, B) = Eigen::Map<const RowMajorArray, Eigen::Aligned64>(p, B, V).rowwise().sum();
#endif
}

// p[b] /= rsum[b] (a division, as torch's softmax does).
void normalize_rows(float* p, Index B, Index V, const float* rsum) {
  for (Index b = 0; b < B; ++b) {
    float* __restrict pr = p + b * V;
    const float s = rsum[b];
    for (Index c = 0; c < V; ++c) pr[c] = pr[c] / s;
  }
}

// ---- The first Linear's token path --------------------------------------------------------
// The token path's kernels, for one position j with n pairs (tokens tok[0..n)): E = n_embd,
// N = fan_out, C the embedding table (V, E), Wj the E rows of W that position j meets.
//   pairs_forward:  P (n, N)   = C[tok] @ Wj
//   pairs_dweight:  dWj (E, N) = C[tok]^T @ G (n, N)      (overwrites)
//   pairs_dembed:   D (n, E)   = G @ Wj^T
//   gather_rows:    out[b] = sum over j of P[slot(b, j)] (+ bias), positions in order
// Portable: plain loops, each sum in index order. Simd: the same sums with rows of N in
// 16-float vectors (fused multiply-adds; pairs_dembed adds each dot product's 16 lanes in a
// tree at the end).
void pairs_forward_portable(const float* C, const int32_t* tok, int n, int E, const float* Wj, int N, float* P, int ldp) {
  for (int s = 0; s < n; ++s) {
    const float* cs = C + static_cast<std::ptrdiff_t>(tok[s]) * E;
    float* __restrict p = P + static_cast<std::ptrdiff_t>(s) * ldp;
    std::fill_n(p, N, 0.0f);
    for (int e = 0; e < E; ++e) {
      const float a = cs[e];
      const float* __restrict w = Wj + static_cast<std::ptrdiff_t>(e) * N;
      for (int c = 0; c < N; ++c) p[c] += a * w[c];
    }
  }
}
void pairs_dweight_portable(const float* C, const int32_t* tok, const float* G, int ldg, int n, int E, int N, float* dWj) {
  for (int e = 0; e < E; ++e) {
    float* __restrict d = dWj + static_cast<std::ptrdiff_t>(e) * N;
    std::fill_n(d, N, 0.0f);
    for (int s = 0; s < n; ++s) {
      const float a = C[static_cast<std::ptrdiff_t>(tok[s]) * E + e];
      const float* __restrict g = G + static_cast<std::ptrdiff_t>(s) * ldg;
      for (int c = 0; c < N; ++c) d[c] += a * g[c];
    }
  }
}
void pairs_dembed_portable(const float* G, int ldg, int n, int E, const float* Wj, int N, float* D) {
  for (int s = 0; s < n; ++s)
    for (int e = 0; e < E; ++e) {
      const float* __restrict g = G + static_cast<std::ptrdiff_t>(s) * ldg;
      const float* __restrict w = Wj + static_cast<std::ptrdiff_t>(e) * N;
      // Eight partial sums (lane c % 8), then those in order: a fixed order the compiler can
      // vectorize (one running sum cannot be reordered without -ffast-math).
      float part[8] = {};
      int c = 0;
      for (; c + 8 <= N; c += 8)
        for (int l = 0; l < 8; ++l) part[l] += g[c + l] * w[c + l];
      for (int l = 0; c < N; ++c, ++l) part[l] += g[c] * w[c];
      float acc = 0;
      for (float p : part) acc += p;
      D[s * E + e] = acc;
    }
}
void gather_rows_portable(const float* P, int ldp, const int32_t* row_slot, int rows, int T, int N, const float* bias,
                          float* out) {
  for (int b = 0; b < rows; ++b) {
    float* __restrict o = out + static_cast<std::ptrdiff_t>(b) * N;
    const int32_t* rs = row_slot + static_cast<std::ptrdiff_t>(b) * T;
    const float* __restrict p = P + static_cast<std::ptrdiff_t>(rs[0]) * ldp;
    for (int c = 0; c < N; ++c) o[c] = p[c];
    for (int j = 1; j < T; ++j) {
      const float* __restrict q = P + static_cast<std::ptrdiff_t>(rs[j]) * ldp;
      for (int c = 0; c < N; ++c) o[c] += q[c];
    }
    if (bias)
      for (int c = 0; c < N; ++c) o[c] += bias[c];
  }
}

#if defined(__AVX512F__)
template <int NV, class F>
void with_nv(int nv, F&& f) {
  if constexpr (NV > 0) {
    if (nv == NV)
      f(std::integral_constant<int, NV>{});
    else
      with_nv<NV - 1>(nv, f);
  }
}
inline __mmask16 tail_mask(int left) {
  return left >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << left) - 1u);
}

template <int NV>
void gather_rows_block(const float* P, int ldp, const int32_t* row_slot, int rows, int T, int N, int c0, const float* bias,
                       float* out) {
  const __mmask16 ml = tail_mask(N - c0 - 16 * (NV - 1));
  __m512 bv[NV];
  for (int v = 0; v < NV; ++v)
    bv[v] = bias ? _mm512_maskz_loadu_ps(v + 1 < NV ? 0xFFFF : ml, bias + c0 + 16 * v) : _mm512_setzero_ps();
  for (int b = 0; b < rows; ++b) {
    const int32_t* rs = row_slot + static_cast<std::ptrdiff_t>(b) * T;
    __m512 acc[NV];
    // P's rows are padded to whole vectors (ldp), so its loads need no mask.
    const float* p = P + static_cast<std::ptrdiff_t>(rs[0]) * ldp + c0;
    for (int v = 0; v < NV; ++v) acc[v] = _mm512_loadu_ps(p + 16 * v);
    for (int j = 1; j < T; ++j) {
      const float* q = P + static_cast<std::ptrdiff_t>(rs[j]) * ldp + c0;
      for (int v = 0; v < NV; ++v) acc[v] = _mm512_add_ps(acc[v], _mm512_loadu_ps(q + 16 * v));
    }
    if (bias)
      for (int v = 0; v < NV; ++v) acc[v] = _mm512_add_ps(acc[v], bv[v]);
    float* o = out + static_cast<std::ptrdiff_t>(b) * N + c0;
    for (int v = 0; v + 1 < NV; ++v) _mm512_storeu_ps(o + 16 * v, acc[v]);
    _mm512_mask_storeu_ps(o + 16 * (NV - 1), ml, acc[NV - 1]);
  }
}
// Columns in blocks of up to MaxNV vectors, as evenly as the vectors allow (200 = 7 + 6).
template <int MaxNV, class Block>
void over_column_blocks(int N, Block block) {
  const int vectors = (N + 15) / 16, blocks = (vectors + MaxNV - 1) / MaxNV;
  for (int c0 = 0, k = 0; k < blocks; ++k) {
    const int nv = (vectors - c0 / 16 + (blocks - k) - 1) / (blocks - k);
    with_nv<MaxNV>(nv, [&](auto NV) { block(NV, c0); });
    c0 += 16 * nv;
  }
}
// P = C[tok] @ Wj, column vector by column vector: the M rows of Wj for this vector (M <= 16
// rows from e0, compile-time) stay in registers while R pairs at a time run through them, so
// each multiply-add reads only its broadcast C[v][e]. Rows e0 > 0 continue the sums in P.
template <int M, int R>
__attribute__((always_inline)) inline void pairs_forward_cols_rows(const float* C, const int32_t* tok, int s, int E, int e0,
                                                                   const __m512* w, float* P, int ldp, int v) {
  __m512 acc[R];
  const float* cs[R];
  for (int r = 0; r < R; ++r) {
    cs[r] = C + static_cast<std::ptrdiff_t>(tok[s + r]) * E + e0;
    acc[r] = e0 == 0 ? _mm512_setzero_ps() : _mm512_loadu_ps(P + static_cast<std::ptrdiff_t>(s + r) * ldp + 16 * v);
  }
  for (int i = 0; i < M; ++i)
    for (int r = 0; r < R; ++r) acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(cs[r][i]), w[i], acc[r]);
  for (int r = 0; r < R; ++r) {
    // Whole vectors: P's rows are padded (ldp), and the padding lanes hold zeros (W's
    // masked-off lanes), so the gather's unmasked loads never wait on a masked store.
    _mm512_storeu_ps(P + static_cast<std::ptrdiff_t>(s + r) * ldp + 16 * v, acc[r]);
  }
}
template <int M>
void pairs_forward_cols(const float* C, const int32_t* tok, int n, int E, const float* Wj, int N, int e0, float* P, int ldp) {
  constexpr int R = 6;
  const int vectors = (N + 15) / 16;
  for (int v = 0; v < vectors; ++v) {
    const __mmask16 mk = tail_mask(N - 16 * v);
    __m512 w[M];
    for (int i = 0; i < M; ++i) w[i] = _mm512_maskz_loadu_ps(mk, Wj + static_cast<std::ptrdiff_t>(e0 + i) * N + 16 * v);
    int s = 0;
    for (; s + R <= n; s += R) pairs_forward_cols_rows<M, R>(C, tok, s, E, e0, w, P, ldp, v);
    for (; s < n; ++s) pairs_forward_cols_rows<M, 1>(C, tok, s, E, e0, w, P, ldp, v);
  }
}
void pairs_forward_simd(const float* C, const int32_t* tok, int n, int E, const float* Wj, int N, float* P, int ldp) {
  for (int e0 = 0; e0 < E; e0 += 16)
    with_nv<16>(std::min(16, E - e0), [&](auto M) { pairs_forward_cols<decltype(M)::value>(C, tok, n, E, Wj, N, e0, P, ldp); });
}
// dWj = C[tok]^T G, column vector by column vector: the M rows of dWj (from e0) accumulate in
// registers over the pairs in order; each vector of G is loaded once for its M multiply-adds.
template <int M>
void pairs_dweight_cols(const float* C, const int32_t* tok, const float* G, int ldg, int n, int E, int N, int e0, float* dWj) {
  const int vectors = (N + 15) / 16;
  for (int v = 0; v < vectors; ++v) {
    const bool full = 16 * (v + 1) <= N;
    const __mmask16 mk = tail_mask(N - 16 * v);
    __m512 acc[M];
    for (int i = 0; i < M; ++i) acc[i] = _mm512_setzero_ps();
    for (int s = 0; s < n; ++s) {
      const __m512 g = _mm512_loadu_ps(G + static_cast<std::ptrdiff_t>(s) * ldg + 16 * v);  // padded rows
      const float* cs = C + static_cast<std::ptrdiff_t>(tok[s]) * E + e0;
      for (int i = 0; i < M; ++i) acc[i] = _mm512_fmadd_ps(_mm512_set1_ps(cs[i]), g, acc[i]);
    }
    for (int i = 0; i < M; ++i) {
      float* d = dWj + static_cast<std::ptrdiff_t>(e0 + i) * N + 16 * v;
      if (full)
        _mm512_storeu_ps(d, acc[i]);
      else
        _mm512_mask_storeu_ps(d, mk, acc[i]);
    }
  }
}
void pairs_dweight_simd(const float* C, const int32_t* tok, const float* G, int ldg, int n, int E, int N, float* dWj) {
  for (int e0 = 0; e0 < E; e0 += 16)
    with_nv<16>(std::min(16, E - e0), [&](auto M) { pairs_dweight_cols<decltype(M)::value>(C, tok, G, ldg, n, E, N, e0, dWj); });
}
void gather_rows_simd(const float* P, int ldp, const int32_t* row_slot, int rows, int T, int N, const float* bias, float* out) {
  over_column_blocks<14>(
      N, [&](auto NV, int c0) { gather_rows_block<decltype(NV)::value>(P, ldp, row_slot, rows, T, N, c0, bias, out); });
}

// The 16 lane sums of a[0..16) as one vector (lane i = the sum of a[i]'s lanes): unpack and
// add pairs of vectors, then pairs of 128-bit blocks; 15 x 3 instructions for 16 sums.
inline __m512 lane_sums16(const __m512* a) {
  __m512 l1[8], l2[4], l3[2];
  for (int i = 0; i < 8; ++i)  // per 128-bit block: a0+a2, b0+b2, a1+a3, b1+b3
    l1[i] = _mm512_add_ps(_mm512_unpacklo_ps(a[2 * i], a[2 * i + 1]), _mm512_unpackhi_ps(a[2 * i], a[2 * i + 1]));
  for (int i = 0; i < 4; ++i) {  // per 128-bit block: the 4-lane sums of a, b, c, d
    const __m512d x = _mm512_castps_pd(l1[2 * i]), y = _mm512_castps_pd(l1[2 * i + 1]);
    l2[i] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(x, y)), _mm512_castpd_ps(_mm512_unpackhi_pd(x, y)));
  }
  for (int i = 0; i < 2; ++i)  // blocks [u0+u1, u2+u3, w0+w1, w2+w3]
    l3[i] = _mm512_add_ps(_mm512_shuffle_f32x4(l2[2 * i], l2[2 * i + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                          _mm512_shuffle_f32x4(l2[2 * i], l2[2 * i + 1], _MM_SHUFFLE(3, 1, 3, 1)));
  return _mm512_add_ps(_mm512_shuffle_f32x4(l3[0], l3[1], _MM_SHUFFLE(2, 0, 2, 0)),
                       _mm512_shuffle_f32x4(l3[0], l3[1], _MM_SHUFFLE(3, 1, 3, 1)));
}

// D[s][e0 + i] = G[s] . Wj[e0 + i] for i < M (M <= 16, compile-time so that the M running sums
// stay in registers): each vector of G[s] is loaded once and meets the M rows of Wj, so the M
// sums advance side by side; then one lane tree for the M dot products.
template <int M>
void pairs_dembed_rows(const float* G, int ldg, int n, int E, const float* Wj, int N, int e0, float* D) {
  const int full = N / 16;
  const __mmask16 ml = tail_mask(N - 16 * full);
  for (int s = 0; s < n; ++s) {
    const float* g = G + static_cast<std::ptrdiff_t>(s) * ldg;
    const float* w = Wj + static_cast<std::ptrdiff_t>(e0) * N;
    __m512 acc[16];
    for (int i = 0; i < 16; ++i) acc[i] = _mm512_setzero_ps();
    for (int v = 0; v < full; ++v) {
      const __m512 gv = _mm512_loadu_ps(g + 16 * v);
      for (int i = 0; i < M; ++i)
        acc[i] = _mm512_fmadd_ps(gv, _mm512_loadu_ps(w + static_cast<std::ptrdiff_t>(i) * N + 16 * v), acc[i]);
    }
    if (N > 16 * full) {
      const __m512 gv = _mm512_loadu_ps(g + 16 * full);  // padded row; W's masked lanes are 0
      for (int i = 0; i < M; ++i)
        acc[i] = _mm512_fmadd_ps(gv, _mm512_maskz_loadu_ps(ml, w + static_cast<std::ptrdiff_t>(i) * N + 16 * full), acc[i]);
    }
    _mm512_mask_storeu_ps(D + static_cast<std::ptrdiff_t>(s) * E + e0, tail_mask(M), lane_sums16(acc));
  }
}
void pairs_dembed_simd(const float* G, int ldg, int n, int E, const float* Wj, int N, float* D) {
  for (int e0 = 0; e0 < E; e0 += 16)
    with_nv<16>(std::min(16, E - e0), [&](auto M) { pairs_dembed_rows<decltype(M)::value>(G, ldg, n, E, Wj, N, e0, D); });
}

// G[s] = the sum of dout's rows slot_rows[begin[s] .. begin[s + 1]) (ascending: the first one
// copied, then the others added in order), in registers, one store per pair. (Adding each row
// into G in memory instead makes every update of a frequent pair wait on the previous one's
// store, and the masked last vector's store cannot be forwarded: 1.4 us a step.)
template <int NV>
void pair_sums_block(const float* dout, const int32_t* begin, const int32_t* slot_rows, int P, int N, int c0, float* G, int ldg) {
  const __mmask16 ml = tail_mask(N - c0 - 16 * (NV - 1));
  for (int s = 0; s < P; ++s) {
    __m512 acc[NV];
    const float* d0 = dout + static_cast<std::ptrdiff_t>(slot_rows[begin[s]]) * N + c0;
    for (int v = 0; v < NV; ++v) acc[v] = _mm512_maskz_loadu_ps(v + 1 < NV ? 0xFFFF : ml, d0 + 16 * v);
    for (int r = begin[s] + 1; r < begin[s + 1]; ++r) {
      const float* d = dout + static_cast<std::ptrdiff_t>(slot_rows[r]) * N + c0;
      for (int v = 0; v < NV; ++v) acc[v] = _mm512_add_ps(acc[v], _mm512_maskz_loadu_ps(v + 1 < NV ? 0xFFFF : ml, d + 16 * v));
    }
    // Whole vectors into G's padded rows (the padding lanes are dout's masked-off zeros).
    float* g = G + static_cast<std::ptrdiff_t>(s) * ldg + c0;
    for (int v = 0; v < NV; ++v) _mm512_storeu_ps(g + 16 * v, acc[v]);
  }
}
void pair_sums_simd(const float* dout, const int32_t* begin, const int32_t* slot_rows, int P, int N, float* G, int ldg) {
  over_column_blocks<14>(
      N, [&](auto NV, int c0) { pair_sums_block<decltype(NV)::value>(dout, begin, slot_rows, P, N, c0, G, ldg); });
}
#endif
void pair_sums_portable(const float* dout, const int32_t* begin, const int32_t* slot_rows, int P, int N, float* G, int ldg) {
  for (int s = 0; s < P; ++s) {
    float* __restrict g = G + static_cast<std::ptrdiff_t>(s) * ldg;
    std::copy_n(dout + static_cast<std::ptrdiff_t>(slot_rows[begin[s]]) * N, N, g);
    for (int r = begin[s] + 1; r < begin[s + 1]; ++r) {
      const float* __restrict d = dout + static_cast<std::ptrdiff_t>(slot_rows[r]) * N;
      for (int c = 0; c < N; ++c) g[c] += d[c];
    }
  }
}

// ---- Products through Eigen -----------------------------------------------------------------
using RowMajor = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using Stride = Eigen::OuterStride<>;
using CMap = Eigen::Map<const RowMajor, 0, Stride>;
using MMap = Eigen::Map<RowMajor, 0, Stride>;

void gemm_eigen(bool ta, bool tb, int M, int N, int K, const float* A, int lda, const float* B, int ldb, float* C, int ldc,
                bool accumulate) {
  MMap c(C, M, N, Stride(ldc));
  const CMap a(A, ta ? K : M, ta ? M : K, Stride(lda));
  const CMap b(B, tb ? N : K, tb ? K : N, Stride(ldb));
  auto run = [&](const auto& x, const auto& y) {
    if (accumulate)
      c.noalias() += x * y;
    else
      c.noalias() = x * y;
  };
  if (!ta && !tb)
    run(a, b);
  else if (ta && !tb)
    run(a.transpose(), b);
  else if (!ta && tb)
    run(a, b.transpose());
  else
    run(a.transpose(), b.transpose());
}

// ---- Optimizers (optim.cpp says what each line is) ------------------------------------------
void sgd_plain(float* p, const float* g, float neg_lr, std::size_t k0, std::size_t k1) {
  for (std::size_t k = k0; k < k1; ++k) {
    const float u = neg_lr * g[k];
    p[k] = p[k] + u;
  }
}

void sgd(float* p, const float* g, float* buf, const SgdArgs& args, std::size_t k0, std::size_t k1) {
  const SgdArgs a = args;  // a copy: p's stores cannot alias it, so its fields stay in registers
  for (std::size_t k = k0; k < k1; ++k) {
    float d = g[k];
    if (a.use_wd) d = d + a.weight_decay * p[k];
    if (a.use_mom) {
      const float b = a.first ? d : buf[k] * a.momentum + a.keep * d;
      buf[k] = b;
      d = a.nesterov ? d + a.momentum * b : b;
    }
    p[k] = p[k] + a.neg_lr * d;
  }
}

void rmsprop(float* p, const float* g, float* buf, float* sq, float* ga, const RmspropArgs& args, std::size_t k0,
             std::size_t k1) {
  const RmspropArgs a = args;  // a copy: p's stores cannot alias it, so its fields stay in registers
  for (std::size_t k = k0; k < k1; ++k) {
    float gk = g[k];
    if (a.use_wd) gk = gk + a.weight_decay * p[k];
    const float s = sq[k] * a.alpha + a.one_m_alpha * gk * gk;
    sq[k] = s;
    float avg;
    if (a.centered) {
      const float m = ga[k] * a.alpha + a.one_m_alpha * gk;
      ga[k] = m;
      avg = std::sqrt(s + -1.0f * m * m);
    } else {
      avg = std::sqrt(s);
    }
    avg = avg + a.eps;
    if (a.use_mom) {
      const float b = buf[k] * a.momentum + 1.0f * gk / avg;
      buf[k] = b;
      p[k] = p[k] + a.neg_lr * b;
    } else {
      p[k] = p[k] + a.neg_lr * gk / avg;
    }
  }
}

void adam(float* p, const float* g, float* m, float* v, float* vmax, const AdamArgs& args, std::size_t k0, std::size_t k1) {
  const AdamArgs a = args;  // a copy: p's stores cannot alias it, so its fields stay in registers
  for (std::size_t k = k0; k < k1; ++k) {
    float pk = p[k];
    if (a.decoupled) pk = pk * a.shrink;
    float gk = g[k];
    if (a.coupled_wd) gk = gk + a.weight_decay * pk;
    const float mk = m[k] * a.b1 + a.one_m_b1 * gk;
    const float vk = v[k] * a.b2 + a.one_m_b2 * gk * gk;
    m[k] = mk;
    v[k] = vk;
    float second = vk;
    if (a.amsgrad) {
      second = vmax[k] < vk ? vk : vmax[k];
      vmax[k] = second;
    }
    const float denom = std::sqrt(second) / a.bc2_sqrt + a.eps;
    p[k] = pk + a.neg_step_size * mk / denom;
  }
}

// ---- Transpose ----------------------------------------------------------------------------
#if defined(__AVX512F__)
// One block of up to 16 x 16: rows r <= 16 of c <= 16 floats in, c rows of r floats out. The
// missing rows and columns load as zeros and are not stored. Four rounds of shuffles (pairs of
// floats, of doubles, of 128-bit lanes twice), every register named so nothing goes to memory.
inline void transpose_block16(const float* in, Index ldi, float* out, Index ldo, int r, int c) {
  const auto cols = static_cast<__mmask16>((1u << c) - 1u), rows = static_cast<__mmask16>((1u << r) - 1u);
  __m512 a[16], b[16];
#pragma GCC unroll 16
  for (int i = 0; i < 16; ++i) a[i] = i < r ? _mm512_maskz_loadu_ps(cols, in + i * ldi) : _mm512_setzero_ps();
#pragma GCC unroll 16
  for (int i = 0; i < 16; i += 2) {
    b[i] = _mm512_unpacklo_ps(a[i], a[i + 1]);
    b[i + 1] = _mm512_unpackhi_ps(a[i], a[i + 1]);
  }
#pragma GCC unroll 16
  for (int i = 0; i < 16; i += 4)
    for (int h = 0; h < 2; ++h) {
      const __m512d lo = _mm512_castps_pd(b[i + h]), hi = _mm512_castps_pd(b[i + h + 2]);
      a[i + 2 * h] = _mm512_castpd_ps(_mm512_unpacklo_pd(lo, hi));
      a[i + 2 * h + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(lo, hi));
    }
#pragma GCC unroll 16
  for (int i = 0; i < 4; ++i) {
    b[i] = _mm512_shuffle_f32x4(a[i], a[i + 4], 0x88);
    b[i + 4] = _mm512_shuffle_f32x4(a[i], a[i + 4], 0xdd);
    b[i + 8] = _mm512_shuffle_f32x4(a[i + 8], a[i + 12], 0x88);
    b[i + 12] = _mm512_shuffle_f32x4(a[i + 8], a[i + 12], 0xdd);
  }
#pragma GCC unroll 16
  for (int i = 0; i < 4; ++i) {
    a[i] = _mm512_shuffle_f32x4(b[i], b[i + 8], 0x88);
    a[i + 8] = _mm512_shuffle_f32x4(b[i], b[i + 8], 0xdd);
    a[i + 4] = _mm512_shuffle_f32x4(b[i + 4], b[i + 12], 0x88);
    a[i + 12] = _mm512_shuffle_f32x4(b[i + 4], b[i + 12], 0xdd);
  }
#pragma GCC unroll 16
  for (int i = 0; i < 16; ++i)
    if (i < c) _mm512_mask_storeu_ps(out + i * ldo, rows, a[i]);
}

// out (cols x rows, row stride ldo) = in (rows x cols, row stride ldi) transposed.
void transpose(const float* in, Index rows, Index cols, Index ldi, float* out, Index ldo) {
  for (Index i = 0; i < rows; i += 16)
    for (Index j = 0; j < cols; j += 16)
      transpose_block16(in + i * ldi + j, ldi, out + j * ldo + i, ldo, static_cast<int>(std::min<Index>(16, rows - i)),
                        static_cast<int>(std::min<Index>(16, cols - j)));
}
#endif

// ---- The FMA peak -------------------------------------------------------------------------
constexpr const char* fma_vector_isa() {
#if defined(__AVX512F__)
  return "avx512 (16 floats)";
#elif defined(__FMA__)
  return "avx2+fma (8 floats)";
#else
  return "4-float vectors, multiply + add";
#endif
}

double measure_fma_peak_gflops(double seconds) {
  using clock = std::chrono::steady_clock;
  constexpr int kChains = 12;  // enough independent chains to cover FMA latency x 2 ports
  const long iters = 1 << 16;
  double best = 0;
  const auto t_end = clock::now() + std::chrono::duration<double>(seconds);
  volatile float sink = 0;
  do {
#if defined(__AVX512F__)
    __m512 acc[kChains];
    for (int c = 0; c < kChains; ++c) acc[c] = _mm512_set1_ps(static_cast<float>(c) * 1e-3f);
    const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
    const auto t0 = clock::now();
    for (long i = 0; i < iters; ++i)
      for (int c = 0; c < kChains; ++c) acc[c] = _mm512_fmadd_ps(acc[c], a, b);
    const double dt = std::chrono::duration<double>(clock::now() - t0).count();
    float s = 0;
    for (int c = 0; c < kChains; ++c) s += _mm512_reduce_add_ps(acc[c]);
    sink = s;
    const double flops = 2.0 * 16 * kChains * static_cast<double>(iters);
#elif defined(__FMA__)
    __m256 acc[kChains];
    for (int c = 0; c < kChains; ++c) acc[c] = _mm256_set1_ps(static_cast<float>(c) * 1e-3f);
    const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
    const auto t0 = clock::now();
    for (long i = 0; i < iters; ++i)
      for (int c = 0; c < kChains; ++c) acc[c] = _mm256_fmadd_ps(acc[c], a, b);
    const double dt = std::chrono::duration<double>(clock::now() - t0).count();
    alignas(32) float tmp[8];
    float s = 0;
    for (int c = 0; c < kChains; ++c) {
      _mm256_store_ps(tmp, acc[c]);
      for (float v : tmp) s += v;
    }
    sink = s;
    const double flops = 2.0 * 8 * kChains * static_cast<double>(iters);
#else
    // Without FMA instructions (a portable x86-64 or other build) the yardstick is what the
    // portable kernels can use: 4-float vectors (SSE2 / NEON), a multiply and an add (std::fma
    // would be a slow library call here, not the machine's speed).
    typedef float v4 __attribute__((vector_size(16)));
    v4 acc[kChains];
    for (int c = 0; c < kChains; ++c) acc[c] = v4{1, 1, 1, 1} * (static_cast<float>(c) * 1e-3f);
    const v4 a = {0.999999f, 0.999999f, 0.999999f, 0.999999f}, b = {1e-7f, 1e-7f, 1e-7f, 1e-7f};
    const auto t0 = clock::now();
    for (long i = 0; i < iters; ++i)
      for (int c = 0; c < kChains; ++c) acc[c] = acc[c] * a + b;
    const double dt = std::chrono::duration<double>(clock::now() - t0).count();
    float s = 0;
    for (int c = 0; c < kChains; ++c)
      for (int k = 0; k < 4; ++k) s += acc[c][k];
    sink = s;
    const double flops = 2.0 * 4 * kChains * static_cast<double>(iters);
#endif
    if (dt > 0) best = std::max(best, flops / dt / 1e9);
  } while (clock::now() < t_end);
  (void)sink;
  return best;
}

}  // namespace

const Table& table() {
  static constexpr Table t {
    .name = MM_STR(MM_KERNEL_SET), .vectors = fma_vector_isa(), .embedding_rows = embedding_rows,
    .embedding_scatter = embedding_scatter, .add_bias_rows = add_bias_rows, .column_sums = column_sums,
    .bn_statistics = bn_statistics_all, .bn_normalize = bn_normalize, .bn_grad_sums = grad_sums, .bn_dx = bn_dx,
    .group_norm_forward = group_norm_forward, .group_norm_backward = group_norm_backward, .add = add, .all_finite = all_finite,
    .tanh_forward = tanh_forward, .tanh_backward = tanh_backward, .softmax_rows = softmax_rows, .normalize_rows = normalize_rows,
    .tokens_portable = {pairs_forward_portable, pairs_dweight_portable, pairs_dembed_portable, pair_sums_portable,
                        gather_rows_portable},
#if defined(__AVX512F__)
    .tokens_simd = {pairs_forward_simd, pairs_dweight_simd, pairs_dembed_simd, pair_sums_simd, gather_rows_simd},
#else
    .tokens_simd = {},
#endif
#if defined(__AVX512F__)
    .transpose = transpose,
#else
    .transpose = nullptr,
#endif
    .gemm_eigen = gemm_eigen, .sgd_plain = sgd_plain, .sgd = sgd, .rmsprop = rmsprop, .adam = adam,
    .fma_peak_gflops = measure_fma_peak_gflops,
  };
  return t;
}

}  // namespace mm::kernels::MM_KERNEL_SET
