// Forward and backward of the lecture's layers. Each backward overwrites its parameter
// gradients (see layers.h). Float expressions follow the lecture's PyTorch code term by term
// where the order of roundings matters for reproducing its numbers.
#include "makemore/layers.h"

#include "makemore/error.h"
#include "makemore/gemm.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fmt/format.h>
#include <limits>
#include <stdexcept>
#include <type_traits>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace mm {

namespace {
void column_sums(const float* __restrict x, Eigen::Index n, Eigen::Index C, float* __restrict sum);  // below

int declare(ParamStore& store, const std::string& name, int rows, int cols, bool is_1d, bool trainable,
            int fan_in, InitSpec init) {
  ParamInfo p;
  p.name = name;
  p.rows = rows;
  p.cols = cols;
  p.is_1d = is_1d;
  p.trainable = trainable;
  p.fan_in = fan_in;
  p.init = init;
  return store.add(std::move(p));
}
}  // namespace

// ---- Embedding ---------------------------------------------------------------------------
std::string Embedding::describe() const { return fmt::format("Embedding({}, {})", vocab_, n_embd_); }

void Embedding::build(int in_time, int in_features, ParamStore& store, const std::string& prefix) {
  store_ = &store;
  in_time_ = in_time;
  in_features_ = in_features;  // the context length: one token per column
  out_time_ = in_features;
  out_features_ = n_embd_;
  param_ids_ = {declare(store, prefix + "weight", vocab_, n_embd_, false, true, n_embd_, init_)};
}

void Embedding::forward_tokens(const int32_t* tokens, int batch, int block_size) {
  x_ = nullptr;
  const std::size_t n = static_cast<std::size_t>(batch) * static_cast<std::size_t>(block_size);
  tokens_.assign(tokens, tokens + n);
  out_.resize(batch, static_cast<Eigen::Index>(block_size) * n_embd_);
  const float* C = store_->data(param_ids_[0]);
  const std::size_t width = static_cast<std::size_t>(n_embd_);
  float* out = out_.data();
#if defined(__AVX512F__)
  if (width <= 16) {  // the lecture's rows (10 or 2 floats): one masked load and store each
    const auto m = static_cast<__mmask16>((1u << width) - 1u);
    for (std::size_t r = 0; r < n; ++r)
      _mm512_mask_storeu_ps(out + r * width, m, _mm512_maskz_loadu_ps(m, C + static_cast<std::size_t>(tokens_[r]) * width));
    return;
  }
#endif
  for (std::size_t r = 0; r < n; ++r) std::copy_n(C + static_cast<std::size_t>(tokens_[r]) * width, width, out + r * width);
}

void Embedding::forward(const Mat& x, Mode) {
  std::vector<int32_t> tok(static_cast<std::size_t>(x.size()));
  for (std::size_t i = 0; i < tok.size(); ++i) tok[i] = static_cast<int32_t>(x.data()[i]);
  forward_tokens(tok.data(), static_cast<int>(x.rows()), static_cast<int>(x.cols()));
  x_ = &x;
}

// dC[v] = sum of the dout rows (n_embd wide) whose token is v (a scatter-add).
void Embedding::backward(const Mat& dout, Mat* dx) {
  float* __restrict dC = store_->grad(param_ids_[0]);
  const std::size_t width = static_cast<std::size_t>(n_embd_);
  std::fill_n(dC, static_cast<std::size_t>(vocab_) * width, 0.0f);
  const float* src = dout.data();
  for (std::size_t r = 0; r < tokens_.size(); ++r) {
    float* __restrict dst = dC + static_cast<std::size_t>(tokens_[r]) * width;
    const float* __restrict row = src + r * width;
    for (std::size_t c = 0; c < width; ++c) dst[c] += row[c];
  }
  if (dx && x_) dx->setZero(x_->rows(), x_->cols());  // token indices have no gradient
}

// ---- Flatten -----------------------------------------------------------------------------
void Flatten::build(int in_time, int in_features, ParamStore& store, const std::string&) {
  store_ = &store;
  in_time_ = in_time;
  in_features_ = in_features;
  const int n = n_ == 0 ? in_time : n_;
  if (n <= 0 || in_time % n != 0)
    throw std::invalid_argument(fmt::format("FlattenConsecutive({}) needs a time length divisible by {}, got {}", n, n, in_time));
  out_time_ = in_time / n;
  out_features_ = in_features * n;
}

// (B*T, C) row-major is the same memory as (B*T/n, n*C): copy without reordering.
void Flatten::forward(const Mat& x, Mode) {
  x_ = &x;
  const Eigen::Index rows = x.rows() * x.cols() / out_features_;
  out_.resize(rows, out_features_);
  std::copy(x.data(), x.data() + x.size(), out_.data());
}

void Flatten::backward(const Mat& dout, Mat* dx) {
  if (!dx) return;
  dx->resize(x_->rows(), x_->cols());
  std::copy(dout.data(), dout.data() + dout.size(), dx->data());
}

// ---- Linear ------------------------------------------------------------------------------
std::string Linear::describe() const {
  return fmt::format("Linear({}, {}{})", in_features_, fan_out_, bias_ ? "" : ", bias=False");
}

void Linear::build(int in_time, int in_features, ParamStore& store, const std::string& prefix) {
  store_ = &store;
  in_time_ = out_time_ = in_time;
  in_features_ = in_features;
  out_features_ = fan_out_;
  param_ids_ = {declare(store, prefix + "weight", in_features, fan_out_, false, true, in_features, weight_init_)};
  if (bias_) param_ids_.push_back(declare(store, prefix + "bias", 1, fan_out_, true, true, in_features, bias_init_));
}

namespace {
bool simd_token_kernels() {
#if defined(__AVX512F__)
  return true;
#else
  return false;
#endif
}
TokenLinear token_linear_default() {
  const char* env = std::getenv("MAKEMORE_TOKEN_LINEAR");
  if (env == nullptr || *env == '\0') {
    // Without the SIMD kernels the products through x (libxsmm or Eigen) are faster than the
    // portable loops, so those are the default there; the portable loops are for the tests.
    return simd_token_kernels() ? TokenLinear::Simd : TokenLinear::Off;
  }
  if (std::strcmp(env, "off") == 0) return TokenLinear::Off;
  if (std::strcmp(env, "portable") == 0) return TokenLinear::Portable;
  if (std::strcmp(env, "simd") == 0) {
    if (!simd_token_kernels())
      throw Error("MAKEMORE_TOKEN_LINEAR=simd: this build has no AVX-512 token kernels; unset it or use off or portable");
    return TokenLinear::Simd;
  }
  throw Error(fmt::format("MAKEMORE_TOKEN_LINEAR={}: unknown value; use off, portable or simd (or unset it)", env));
}
std::atomic<TokenLinear>& token_linear_ref() {
  static std::atomic<TokenLinear> t{token_linear_default()};
  return t;
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
void gather_rows_portable(const float* P, int ldp, const int32_t* row_slot, int rows, int T, int N, const float* bias, float* out) {
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
    if (nv == NV) f(std::integral_constant<int, NV>{});
    else with_nv<NV - 1>(nv, f);
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
  for (int v = 0; v < NV; ++v) bv[v] = bias ? _mm512_maskz_loadu_ps(v + 1 < NV ? 0xFFFF : ml, bias + c0 + 16 * v) : _mm512_setzero_ps();
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
__attribute__((always_inline)) inline void pairs_forward_cols_rows(const float* C, const int32_t* tok, int s, int E,
                                                                   int e0, const __m512* w, float* P, int ldp, int v) {
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
      if (full) _mm512_storeu_ps(d, acc[i]);
      else _mm512_mask_storeu_ps(d, mk, acc[i]);
    }
  }
}
void pairs_dweight_simd(const float* C, const int32_t* tok, const float* G, int ldg, int n, int E, int N, float* dWj) {
  for (int e0 = 0; e0 < E; e0 += 16)
    with_nv<16>(std::min(16, E - e0), [&](auto M) { pairs_dweight_cols<decltype(M)::value>(C, tok, G, ldg, n, E, N, e0, dWj); });
}
void gather_rows_simd(const float* P, int ldp, const int32_t* row_slot, int rows, int T, int N, const float* bias, float* out) {
  over_column_blocks<14>(N, [&](auto NV, int c0) { gather_rows_block<decltype(NV)::value>(P, ldp, row_slot, rows, T, N, c0, bias, out); });
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
      for (int i = 0; i < M; ++i) acc[i] = _mm512_fmadd_ps(gv, _mm512_loadu_ps(w + static_cast<std::ptrdiff_t>(i) * N + 16 * v), acc[i]);
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
  over_column_blocks<14>(N, [&](auto NV, int c0) { pair_sums_block<decltype(NV)::value>(dout, begin, slot_rows, P, N, c0, G, ldg); });
}
#endif

void pairs_forward(const float* C, const int32_t* tok, int n, int E, const float* Wj, int N, float* P, int ldp) {
#if defined(__AVX512F__)
  if (token_linear() == TokenLinear::Simd) return pairs_forward_simd(C, tok, n, E, Wj, N, P, ldp);
#endif
  pairs_forward_portable(C, tok, n, E, Wj, N, P, ldp);
}
void pairs_dweight(const float* C, const int32_t* tok, const float* G, int ldg, int n, int E, int N, float* dWj) {
#if defined(__AVX512F__)
  if (token_linear() == TokenLinear::Simd) return pairs_dweight_simd(C, tok, G, ldg, n, E, N, dWj);
#endif
  pairs_dweight_portable(C, tok, G, ldg, n, E, N, dWj);
}
void pairs_dembed(const float* G, int ldg, int n, int E, const float* Wj, int N, float* D) {
#if defined(__AVX512F__)
  if (token_linear() == TokenLinear::Simd) return pairs_dembed_simd(G, ldg, n, E, Wj, N, D);
#endif
  pairs_dembed_portable(G, ldg, n, E, Wj, N, D);
}
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
void pair_sums(const float* dout, const int32_t* begin, const int32_t* slot_rows, int P, int N, float* G, int ldg) {
#if defined(__AVX512F__)
  if (token_linear() == TokenLinear::Simd) return pair_sums_simd(dout, begin, slot_rows, P, N, G, ldg);
#endif
  pair_sums_portable(dout, begin, slot_rows, P, N, G, ldg);
}
void gather_rows(const float* P, int ldp, const int32_t* row_slot, int rows, int T, int N, const float* bias, float* out) {
#if defined(__AVX512F__)
  if (token_linear() == TokenLinear::Simd) return gather_rows_simd(P, ldp, row_slot, rows, T, N, bias, out);
#endif
  gather_rows_portable(P, ldp, row_slot, rows, T, N, bias, out);
}
}  // namespace

bool token_linear_available(TokenLinear t) { return t != TokenLinear::Simd || simd_token_kernels(); }
void set_token_linear(TokenLinear t) {
  if (!token_linear_available(t)) throw std::invalid_argument("the SIMD token kernels are not in this build (no AVX-512)");
  token_linear_ref() = t;
}
TokenLinear token_linear() { return token_linear_ref().load(std::memory_order_relaxed); }
const char* token_linear_name(TokenLinear t) {
  return t == TokenLinear::Off ? "off" : t == TokenLinear::Portable ? "portable" : "simd";
}

void Linear::forward(const Mat& x, Mode) {
  x_ = &x;
  token_path_ = tokens_from_ && &x == &tokens_from_->out() && token_linear() != TokenLinear::Off && x.rows() > 0 &&
                tokens_from_->tokens().size() == static_cast<std::size_t>(x.rows()) * static_cast<std::size_t>(in_features_ / tokens_from_->n_embd());
  const int rows = static_cast<int>(x.rows());
  out_.resize(rows, fan_out_);
  if (token_path_) return forward_tokens(x);  // adds the bias itself
  gemm(Op::N, Op::N, rows, fan_out_, in_features_, x.data(), in_features_, store_->data(param_ids_[0]), fan_out_,
       out_.data(), fan_out_);
  if (bias_) add_bias_rows(out_.data(), rows, fan_out_, store_->data(param_ids_[1]));
}

// out[b] = (sum over positions j of P[pair (j, token[b][j])]) + bias, P = C[v] @ W_j once per
// distinct pair.
void Linear::forward_tokens(const Mat& x) {
  const Embedding& emb = *tokens_from_;
  const int rows = static_cast<int>(x.rows()), E = emb.n_embd(), V = emb.vocab_size(), T = in_features_ / E,
            N = fan_out_;
  const int32_t* tok = emb.tokens().data();
  const auto uT = static_cast<std::size_t>(T), uN = static_cast<std::size_t>(N), uE = static_cast<std::size_t>(E),
             uV = static_cast<std::size_t>(V), uB = static_cast<std::size_t>(rows);
  if (slot_of_.size() != uT * uV) slot_of_.assign(uT * uV, -1);
  row_slot_.resize(uB * uT);
  // One more than the pairs there can be: every row writes slot P's token, fresh or not.
  slot_token_.resize(std::min(uB, uV) * uT + 1);
  pos_begin_.resize(uT + 1);
  int32_t P = 0;
  for (std::size_t j = 0; j < uT; ++j) {
    pos_begin_[j] = P;
    int32_t* slot_of = slot_of_.data() + j * uV;
    for (std::size_t b = 0; b < uB; ++b) {
      // Pairs numbered in order of first appearance. Branch-free: a new pair takes slot P (its
      // token is written there either way). (Numbered in token order instead, from a bit mask
      // of the position's tokens, this is ~0.3 us faster, but the sums change order and one of
      // lecture-batchnorm's 20 logged losses then differs from the notebook's in the 4th decimal.)
      const int32_t v = tok[b * uT + j], s = slot_of[v], fresh = s < 0, slot = fresh ? P : s;
      slot_of[v] = slot;
      slot_token_[static_cast<std::size_t>(P)] = v;
      row_slot_[b * uT + j] = slot;
      P += fresh;
    }
  }
  pos_begin_[uT] = P;
  // Put slot_of_ back to all -1 (the entries used only), so the next forward needs no T x V pass.
  for (std::size_t j = 0; j < uT; ++j)
    for (int32_t s = pos_begin_[j]; s < pos_begin_[j + 1]; ++s)
      slot_of_[j * uV + static_cast<std::size_t>(slot_token_[static_cast<std::size_t>(s)])] = -1;

  const float* C = store_->data(emb.weight_id());
  const float* W = store_->data(param_ids_[0]);
  const int ldp = (N + 15) / 16 * 16;  // pair_'s rows padded to whole 16-float vectors
  const auto uL = static_cast<std::size_t>(ldp);
  pair_.resize(P, ldp);
  for (std::size_t j = 0; j < uT; ++j) {
    const int p0 = pos_begin_[j], n = pos_begin_[j + 1] - p0;
    pairs_forward(C, slot_token_.data() + p0, n, E, W + j * uE * uN, N, pair_.data() + static_cast<std::size_t>(p0) * uL, ldp);
  }
  gather_rows(pair_.data(), ldp, row_slot_.data(), rows, T, N, bias_ ? store_->data(param_ids_[1]) : nullptr, out_.data());
}

void Linear::backward(const Mat& dout, Mat* dx) {
  const int rows = static_cast<int>(dout.rows());
  if (token_path_) {
    backward_tokens(dout);
  } else {
    gemm(Op::T, Op::N, in_features_, fan_out_, rows, x_->data(), in_features_, dout.data(), fan_out_,
         store_->grad(param_ids_[0]), fan_out_);
  }
  if (bias_) {
    // db = the column sums of dout, rows added in order, accumulated in registers (the same
    // bits as copying row 0 and adding the others; faster than that row loop).
    column_sums(dout.data(), rows, fan_out_, store_->grad(param_ids_[1]));
  }
  if (dx) {
    dx->resize(rows, in_features_);
    gemm(Op::N, Op::T, rows, in_features_, fan_out_, dout.data(), fan_out_, store_->data(param_ids_[0]), fan_out_,
         dx->data(), in_features_);
  }
}

// G[pair] = the dout rows of the examples that hold the pair, added in row order (the first
// copied); then dW_j = C[pairs of j]^T G_j (every row of W belongs to one position) and
// dC[v] = the sum over the pairs (j, v), j in order, of G[pair] @ W_j^T, written over the
// embedding's gradient.
void Linear::backward_tokens(const Mat& dout) {
  const Embedding& emb = *tokens_from_;
  const int rows = static_cast<int>(dout.rows()), E = emb.n_embd(), V = emb.vocab_size(), T = in_features_ / E,
            N = fan_out_;
  const auto uT = static_cast<std::size_t>(T), uN = static_cast<std::size_t>(N), uE = static_cast<std::size_t>(E);
  const int P = pos_begin_[uT];
  const int ldg = (N + 15) / 16 * 16;  // G's rows padded to whole 16-float vectors
  const auto uL = static_cast<std::size_t>(ldg);
  pair_.resize(P, ldg);
  // Each pair's rows, ascending (a counting sort of row_slot_), then their sums.
  slot_row_begin_.assign(static_cast<std::size_t>(P) + 1, 0);
  for (const int32_t s : row_slot_) ++slot_row_begin_[static_cast<std::size_t>(s) + 1];
  for (std::size_t s = 0; s < static_cast<std::size_t>(P); ++s) slot_row_begin_[s + 1] += slot_row_begin_[s];
  slot_cursor_.assign(slot_row_begin_.begin(), slot_row_begin_.end() - 1);
  slot_rows_.resize(row_slot_.size());
  for (std::size_t b = 0; b < static_cast<std::size_t>(rows); ++b)
    for (std::size_t j = 0; j < uT; ++j)
      slot_rows_[static_cast<std::size_t>(slot_cursor_[static_cast<std::size_t>(row_slot_[b * uT + j])]++)] = static_cast<int32_t>(b);
  float* G = pair_.data();
  pair_sums(dout.data(), slot_row_begin_.data(), slot_rows_.data(), P, N, G, ldg);
  const float* C = store_->data(emb.weight_id());
  const float* W = store_->data(param_ids_[0]);
  float* dW = store_->grad(param_ids_[0]);
  dpair_.resize(P, E);
  for (std::size_t j = 0; j < uT; ++j) {
    const int p0 = pos_begin_[j], n = pos_begin_[j + 1] - p0;
    const float* Gj = G + static_cast<std::size_t>(p0) * uL;
    pairs_dweight(C, slot_token_.data() + p0, Gj, ldg, n, E, N, dW + j * uE * uN);
    pairs_dembed(Gj, ldg, n, E, W + j * uE * uN, N, dpair_.data() + static_cast<std::size_t>(p0) * uE);
  }
  float* __restrict dC = store_->grad(emb.weight_id());
  std::fill_n(dC, static_cast<std::size_t>(V) * uE, 0.0f);
  for (int s = 0; s < P; ++s) {
    float* __restrict dst = dC + static_cast<std::size_t>(slot_token_[static_cast<std::size_t>(s)]) * uE;
    const float* __restrict src = dpair_.data() + static_cast<std::size_t>(s) * uE;
    for (std::size_t e = 0; e < uE; ++e) dst[e] += src[e];
  }
}

// ---- BatchNorm1d -------------------------------------------------------------------------
namespace {
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
      case 1: column_pass<1>(n, c0, C, out, term); break;
      case 2: column_pass<2>(n, c0, C, out, term); break;
      case 3: column_pass<3>(n, c0, C, out, term); break;
      case 4: column_pass<4>(n, c0, C, out, term); break;
      case 5: column_pass<5>(n, c0, C, out, term); break;
      case 6: column_pass<6>(n, c0, C, out, term); break;
      case 7: column_pass<7>(n, c0, C, out, term); break;
      default: column_pass<8>(n, c0, C, out, term); break;
    }
  }
}
#endif

// sum[c] = sum over rows of x[r][c], rows in order.
void column_sums(const float* __restrict x, Eigen::Index n, Eigen::Index C, float* __restrict sum) {
#if defined(__AVX512F__)
  column_reduce(n, C, sum, [x, C](__m512 acc, Eigen::Index r, Eigen::Index c, __mmask16 m) {
    return _mm512_add_ps(acc, _mm512_maskz_loadu_ps(m, x + r * C + c));
  });
#else
  std::fill_n(sum, C, 0.0f);
  for (Eigen::Index r = 0; r < n; ++r)
    for (Eigen::Index c = 0; c < C; ++c) sum[c] += x[r * C + c];
#endif
}

// var[c] = sum over rows of (x[r][c] - mean[c])^2, rows in order.
void column_centered_squares(const float* __restrict x, const float* __restrict mean, Eigen::Index n, Eigen::Index C,
                             float* __restrict var) {
#if defined(__AVX512F__)
  column_reduce(n, C, var, [x, mean, C](__m512 acc, Eigen::Index r, Eigen::Index c, __mmask16 m) {
    const __m512 d = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + r * C + c), _mm512_maskz_loadu_ps(m, mean + c));
    return _mm512_fmadd_ps(d, d, acc);
  });
#else
  std::fill_n(var, C, 0.0f);
  for (Eigen::Index r = 0; r < n; ++r)
    for (Eigen::Index c = 0; c < C; ++c) {
      const float d = x[r * C + c] - mean[c];
      var[c] += d * d;
    }
#endif
}

// dgamma[c] = sum of d * xhat, dbeta[c] = sum of d over the rows, in order.
void grad_sums(const float* __restrict d, const float* __restrict xhat, Eigen::Index n, Eigen::Index C,
               float* __restrict dgamma, float* __restrict dbeta) {
#if defined(__AVX512F__)
  column_reduce(n, C, dgamma, [d, xhat, C](__m512 acc, Eigen::Index r, Eigen::Index c, __mmask16 m) {
    return _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, d + r * C + c), _mm512_maskz_loadu_ps(m, xhat + r * C + c), acc);
  });
  column_sums(d, n, C, dbeta);
#else
  std::fill_n(dgamma, C, 0.0f);
  std::fill_n(dbeta, C, 0.0f);
  for (Eigen::Index r = 0; r < n; ++r)
    for (Eigen::Index c = 0; c < C; ++c) {
      dgamma[c] += d[r * C + c] * xhat[r * C + c];
      dbeta[c] += d[r * C + c];
    }
#endif
}

// Row kernels with non-aliasing pointers, so the compiler vectorizes them over the features.
void normalize_row(const float* __restrict x, const float* __restrict mean, const float* __restrict inv,
                   const float* __restrict gamma, const float* __restrict beta, float* __restrict xhat,
                   float* __restrict out, Eigen::Index C) {
#if defined(__AVX512F__)
  // 16 features at a time, the last block masked (the compiler's own loop ends in scalars).
  for (Eigen::Index c = 0; c < C; c += 16) {
    const auto m = static_cast<__mmask16>(C - c >= 16 ? 0xFFFF : (1u << (C - c)) - 1u);
    const __m512 h = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + c), _mm512_maskz_loadu_ps(m, mean + c)),
                                   _mm512_maskz_loadu_ps(m, inv + c));
    _mm512_mask_storeu_ps(xhat + c, m, h);
    _mm512_mask_storeu_ps(out + c, m, _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, gamma + c), h, _mm512_maskz_loadu_ps(m, beta + c)));
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
                       const float* __restrict gamma, const float* __restrict beta, float* __restrict out,
                       Eigen::Index C) {
  for (Eigen::Index c = 0; c < C; ++c) out[c] = gamma[c] * ((x[c] - mean[c]) * inv[c]) + beta[c];
}
// var /= div; inv = 1 / sqrt(var + eps); the running statistics' moving averages.
void bn_statistics(float* __restrict var, float* __restrict inv, float* __restrict rmean, float* __restrict rstat,
                   const float* __restrict mean, float div, float eps, float keep, float m, bool running_std,
                   Eigen::Index C) {
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
}  // namespace

std::string BatchNorm1d::describe() const {
  return fmt::format("BatchNorm1d({}, eps={}, momentum={}{})", in_features_, opt_.eps, opt_.momentum,
                     opt_.running_std ? ", running std" : "");
}

void BatchNorm1d::build(int in_time, int in_features, ParamStore& store, const std::string& prefix) {
  store_ = &store;
  in_time_ = out_time_ = in_time;
  in_features_ = out_features_ = in_features;
  gamma_ = declare(store, prefix + "gamma", 1, in_features, true, true, in_features, opt_.gamma_init);
  beta_ = declare(store, prefix + "beta", 1, in_features, true, true, in_features, opt_.beta_init);
  running_mean_ = declare(store, prefix + "running_mean", 1, in_features, true, false, in_features,
                          InitSpec{InitSpec::Kind::Zeros});
  running_stat_ = declare(store, prefix + (opt_.running_std ? "running_std" : "running_var"), 1, in_features,
                          true, false, in_features, InitSpec{InitSpec::Kind::Ones});
  param_ids_ = {gamma_, beta_};
}

void BatchNorm1d::forward(const Mat& x, Mode mode) {
  x_ = &x;
  last_mode_ = mode;
  const Eigen::Index n = x.rows(), C = x.cols();
  const float* gamma = store_->data(gamma_);
  const float* beta = store_->data(beta_);
  float* rmean = store_->data(running_mean_);
  float* rstat = store_->data(running_stat_);
  mean_.resize(C);
  inv_std_.resize(C);
  var_.resize(C);
  if (mode == Mode::Train) xhat_.resize(n, C);
  out_.resize(n, C);
  float* mean = mean_.data();
  float* var = var_.data();
  float* inv = inv_std_.data();
  const float* xd = x.data();
  // Explicit loops over rows with the features innermost: each pass streams the (n, C) block
  // once and vectorizes over C; statistics in two passes (mean, then centered squares) as
  // torch.var does, so a large mean costs no precision.
  if (mode == Mode::Train) {
    if (n < 2) throw std::invalid_argument("BatchNorm1d in training needs at least 2 rows per batch");
    column_sums(xd, n, C, mean);
    const float inv_n = 1.0f / static_cast<float>(n);
    for (Eigen::Index c = 0; c < C; ++c) mean[c] *= inv_n;
    column_centered_squares(xd, mean, n, C, var);
    const float div = static_cast<float>(opt_.unbiased ? n - 1 : n);
    const float eps = static_cast<float>(opt_.eps);
    const float keep = static_cast<float>(1.0 - opt_.momentum), m = static_cast<float>(opt_.momentum);
    bn_statistics(var, inv, rmean, rstat, mean, div, eps, keep, m, opt_.running_std, C);
  } else {
    const float eps = static_cast<float>(opt_.eps);
    for (Eigen::Index c = 0; c < C; ++c) {
      mean[c] = rmean[c];
      inv[c] = 1.0f / (opt_.running_std ? rstat[c] : std::sqrt(rstat[c] + eps));
    }
  }
  // One pass: xhat = (x - mean) / std, out = gamma * xhat + beta (the notebook's
  // gain * (x - mean) / std + bias is the same expression up to rounding).
  float* xh = xhat_.data();
  float* o = out_.data();
  if (mode == Mode::Train) {
    for (Eigen::Index r = 0; r < n; ++r) normalize_row(xd + r * C, mean, inv, gamma, beta, xh + r * C, o + r * C, C);
  } else {  // evaluation writes only the output; backward recomputes xhat if it is ever asked
    for (Eigen::Index r = 0; r < n; ++r) normalize_row_out(xd + r * C, mean, inv, gamma, beta, o + r * C, C);
  }
}

// With g = dout * gamma and s the divisor: dx = (g - mean(g) - xhat * sum(g xhat) / (n - k)) / s,
// k = 1 for the unbiased variance, 0 for the biased; in eval mode the statistics are constants
// and dx = g / s. dgamma = sum(dout * xhat), dbeta = sum(dout). One pass for both sums, one
// for dx.
void BatchNorm1d::backward(const Mat& dout, Mat* dx) {
  const Eigen::Index n = dout.rows(), C = dout.cols();
  const float* gamma = store_->data(gamma_);
  float* dgamma = store_->grad(gamma_);
  float* dbeta = store_->grad(beta_);
  const float* d = dout.data();
  if (last_mode_ == Mode::Eval) {  // the forward skipped xhat
    xhat_.resize(n, C);
    const float* xd = x_->data();
    for (Eigen::Index r = 0; r < n; ++r)
      for (Eigen::Index c = 0; c < C; ++c) xhat_(r, c) = (xd[r * C + c] - mean_[c]) * inv_std_[c];
  }
  const float* xh = xhat_.data();
  grad_sums(d, xh, n, C, dgamma, dbeta);
  if (!dx) return;
  dx->resize(n, C);
  float* out = dx->data();
  const float* inv = inv_std_.data();
  gsum_.resize(C);
  gxsum_.resize(C);
  float* a = gsum_.data();   // gamma / s
  float* b = gxsum_.data();  // (mean(g) + ...) folded: see below
  if (last_mode_ == Mode::Eval) {
    for (Eigen::Index c = 0; c < C; ++c) a[c] = gamma[c] * inv[c];
    for (Eigen::Index r = 0; r < n; ++r) scale_row(out + r * C, d + r * C, a, C);
    return;
  }
  const float k = static_cast<float>(opt_.unbiased ? n - 1 : n);
  const float inv_n = 1.0f / static_cast<float>(n);
  // dx = a * dout - b * xhat - c0 with a = gamma / s, b = gamma * dgamma / ((n - k) s),
  // c0 = gamma * dbeta / (n s).
  var_.resize(C);
  float* c0 = var_.data();  // the forward's variance is not needed again
  for (Eigen::Index c = 0; c < C; ++c) {
    a[c] = gamma[c] * inv[c];
    b[c] = a[c] * dgamma[c] / k;
    c0[c] = a[c] * dbeta[c] * inv_n;
  }
  for (Eigen::Index r = 0; r < n; ++r) bn_dx_row(out + r * C, d + r * C, xh + r * C, a, b, c0, C);
}

void BatchNorm1d::calibrate_begin() {
  cal_sum_.setZero(in_features_);
  cal_sumsq_.setZero(in_features_);
  cal_n_ = 0;
}

void BatchNorm1d::calibrate_add(const Mat& x) {
  const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> xd = x.cast<double>();
  cal_sum_ += xd.colwise().sum();
  cal_sumsq_ += xd.array().square().matrix().colwise().sum();
  cal_n_ += static_cast<double>(x.rows());
}

// Whole-training-set statistics (notebook cell 9), in double so 182k rows lose nothing.
void BatchNorm1d::calibrate_end() {
  if (cal_n_ < 2) return;
  auto rmean = store_->value(running_mean_).row(0);
  auto rstat = store_->value(running_stat_).row(0);
  for (int c = 0; c < in_features_; ++c) {
    const double mean = cal_sum_[c] / cal_n_;
    double var = (cal_sumsq_[c] - cal_n_ * mean * mean) / (opt_.unbiased ? cal_n_ - 1 : cal_n_);
    if (var < 0) var = 0;
    rmean[c] = static_cast<float>(mean);
    rstat[c] = static_cast<float>(opt_.running_std ? std::sqrt(var + opt_.eps) : var);
  }
}

// ---- Tanh --------------------------------------------------------------------------------
void Tanh::build(int in_time, int in_features, ParamStore& store, const std::string&) {
  store_ = &store;
  in_time_ = out_time_ = in_time;
  in_features_ = out_features_ = in_features;
}

void Tanh::forward(const Mat& x, Mode) {
  x_ = &x;
  out_.resize(x.rows(), x.cols());
  out_.array() = x.array().tanh();
}

// d tanh(x)/dx = 1 - tanh(x)^2: the cached output is all backward needs.
void Tanh::backward(const Mat& dout, Mat* dx) {
  if (!dx) return;
  dx->resize(dout.rows(), dout.cols());
  dx->array() = dout.array() * (1.0f - out_.array().square());
}

// ---- GroupNorm / LayerNorm ---------------------------------------------------------------
std::string GroupNorm::describe() const {
  return fmt::format("GroupNorm({}, {}, eps={}{})", opt_.groups, in_features_, opt_.eps, opt_.affine ? "" : ", affine=False");
}

std::string LayerNorm::describe() const {
  return fmt::format("LayerNorm({}, eps={}{})", in_features_, opt_.eps, opt_.affine ? "" : ", elementwise_affine=False");
}

void GroupNorm::build(int in_time, int in_features, ParamStore& store, const std::string& prefix) {
  store_ = &store;
  in_time_ = out_time_ = in_time;
  in_features_ = out_features_ = in_features;
  if (opt_.groups <= 0 || in_features % opt_.groups != 0)
    throw std::invalid_argument(fmt::format("GroupNorm({}): {} features cannot be split into {} equal groups; "
                                            "\"groups\" must divide the layer's input width",
                                            opt_.groups, in_features, opt_.groups));
  param_ids_.clear();
  if (opt_.affine) {
    gamma_ = declare(store, prefix + "gamma", 1, in_features, true, true, in_features, opt_.gamma_init);
    beta_ = declare(store, prefix + "beta", 1, in_features, true, true, in_features, opt_.beta_init);
    param_ids_ = {gamma_, beta_};
  }
}

// Per row r and group g of K = C/G features: mu = mean, v = biased variance (sums in double),
// xhat = (x - mu) / sqrt(v + eps), out = gamma * xhat + beta.
void GroupNorm::forward(const Mat& x, Mode) {
  x_ = &x;
  const Eigen::Index n = x.rows(), C = x.cols(), G = opt_.groups, K = C / G;
  xhat_.resize(n, C);
  inv_std_.resize(n, G);
  out_.resize(n, C);
  for (Eigen::Index r = 0; r < n; ++r) {
    const float* xr = x.data() + r * C;
    float* hr = xhat_.data() + r * C;
    for (Eigen::Index g = 0; g < G; ++g) {
      const float* xg = xr + g * K;
      double sum = 0;
      for (Eigen::Index k = 0; k < K; ++k) sum += xg[k];
      const double mu = sum / static_cast<double>(K);
      double ss = 0;
      for (Eigen::Index k = 0; k < K; ++k) ss += (xg[k] - mu) * (xg[k] - mu);
      const double rstd = 1.0 / std::sqrt(ss / static_cast<double>(K) + opt_.eps);
      inv_std_(r, g) = static_cast<float>(rstd);
      for (Eigen::Index k = 0; k < K; ++k) hr[g * K + k] = static_cast<float>((xg[k] - mu) * rstd);
    }
  }
  if (opt_.affine) {
    out_ = (xhat_.array().rowwise() * store_->value(gamma_).row(0).array()).rowwise() +
           store_->value(beta_).row(0).array();
  } else {
    out_ = xhat_;
  }
}

// With g = dout * gamma, per row and group (K features, s = 1/sqrt(v + eps)):
//   dx = s * (g - mean(g) - xhat * mean(g * xhat));  dgamma = sum_rows(dout * xhat), dbeta = sum_rows(dout).
// The statistics are those of the row itself, so train and eval share this backward.
void GroupNorm::backward(const Mat& dout, Mat* dx) {
  const Eigen::Index n = dout.rows(), C = dout.cols(), G = opt_.groups, K = C / G;
  if (opt_.affine) {
    store_->gradient(gamma_).row(0) = (dout.array() * xhat_.array()).colwise().sum();
    store_->gradient(beta_).row(0) = dout.colwise().sum();
  }
  if (!dx) return;
  dx->resize(n, C);
  const float* gamma = opt_.affine ? store_->data(gamma_) : nullptr;
  for (Eigen::Index r = 0; r < n; ++r) {
    const float* dr = dout.data() + r * C;
    const float* hr = xhat_.data() + r * C;
    float* xr = dx->data() + r * C;
    for (Eigen::Index g = 0; g < G; ++g) {
      double sg = 0, sgx = 0;
      for (Eigen::Index k = g * K; k < (g + 1) * K; ++k) {
        const double gk = gamma ? static_cast<double>(dr[k]) * gamma[k] : dr[k];
        sg += gk;
        sgx += gk * hr[k];
      }
      const double mg = sg / static_cast<double>(K), mgx = sgx / static_cast<double>(K), s = inv_std_(r, g);
      for (Eigen::Index k = g * K; k < (g + 1) * K; ++k) {
        const double gk = gamma ? static_cast<double>(dr[k]) * gamma[k] : dr[k];
        xr[k] = static_cast<float>(s * (gk - mg - hr[k] * mgx));
      }
    }
  }
}

// ---- ReLU --------------------------------------------------------------------------------
void ReLU::build(int in_time, int in_features, ParamStore& store, const std::string&) {
  store_ = &store;
  in_time_ = out_time_ = in_time;
  in_features_ = out_features_ = in_features;
}

void ReLU::forward(const Mat& x, Mode) {
  x_ = &x;
  out_.resize(x.rows(), x.cols());
  out_.array() = x.array().max(0.0f);
}

// d relu/dx = 1 where x > 0, 0 elsewhere (0 at x = 0 itself, as torch).
void ReLU::backward(const Mat& dout, Mat* dx) {
  if (!dx) return;
  dx->resize(dout.rows(), dout.cols());
  dx->array() = (x_->array() > 0.0f).select(dout.array(), 0.0f);
}

// ---- GELU --------------------------------------------------------------------------------
namespace {
constexpr double kSqrt1_2 = 0.70710678118654752440;       // 1/sqrt(2)
constexpr double kInvSqrt2Pi = 0.39894228040143267794;    // 1/sqrt(2 pi)
constexpr double kSqrt2OverPi = 0.79788456080286535588;   // sqrt(2/pi)
constexpr double kGeluCubic = 0.044715;
}  // namespace

void GELU::build(int in_time, int in_features, ParamStore& store, const std::string&) {
  store_ = &store;
  in_time_ = out_time_ = in_time;
  in_features_ = out_features_ = in_features;
}

// exact: x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2));
// tanh:  0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
void GELU::forward(const Mat& x, Mode) {
  x_ = &x;
  out_.resize(x.rows(), x.cols());
  const float* in = x.data();
  float* o = out_.data();
  for (Eigen::Index i = 0; i < x.size(); ++i) {
    const double v = in[i];
    o[i] = static_cast<float>(tanh_ ? 0.5 * v * (1.0 + std::tanh(kSqrt2OverPi * (v + kGeluCubic * v * v * v)))
                                    : 0.5 * v * (1.0 + std::erf(v * kSqrt1_2)));
  }
}

// exact: d/dx = Phi(x) + x phi(x), phi(x) = exp(-x^2/2) / sqrt(2 pi);
// tanh:  with u = sqrt(2/pi) (x + 0.044715 x^3), t = tanh(u):
//        d/dx = 0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2).
void GELU::backward(const Mat& dout, Mat* dx) {
  if (!dx) return;
  dx->resize(dout.rows(), dout.cols());
  const float* in = x_->data();
  const float* d = dout.data();
  float* o = dx->data();
  for (Eigen::Index i = 0; i < dout.size(); ++i) {
    const double v = in[i];
    double slope;
    if (tanh_) {
      const double t = std::tanh(kSqrt2OverPi * (v + kGeluCubic * v * v * v));
      slope = 0.5 * (1.0 + t) + 0.5 * v * (1.0 - t * t) * kSqrt2OverPi * (1.0 + 3.0 * kGeluCubic * v * v);
    } else {
      slope = 0.5 * (1.0 + std::erf(v * kSqrt1_2)) + v * kInvSqrt2Pi * std::exp(-0.5 * v * v);
    }
    o[i] = static_cast<float>(d[i] * slope);
  }
}

// ---- Sequential --------------------------------------------------------------------------
void Sequential::build(int in_time, int in_features, ParamStore& store, const std::string& prefix) {
  store_ = &store;
  in_time_ = in_time;
  in_features_ = in_features;
  int t = in_time, f = in_features;
  for (std::size_t i = 0; i < layers_.size(); ++i) {
    layers_[i]->build(t, f, store, prefix + std::to_string(i) + ".");
    t = layers_[i]->out_time();
    f = layers_[i]->out_features();
  }
  out_time_ = t;
  out_features_ = f;
  grads_.resize(layers_.size());
}

void Sequential::forward(const Mat& x, Mode mode) {
  x_ = &x;
  const Mat* in = &x;
  for (auto& l : layers_) {
    l->forward(*in, mode);
    in = &l->out();
  }
}

void Sequential::backward(const Mat& dout, Mat* dx) {
  if (layers_.empty()) {
    if (dx) *dx = dout;
    return;
  }
  grads_.back() = dout;
  for (std::size_t i = layers_.size(); i-- > 0;) layers_[i]->backward(grads_[i], i > 0 ? &grads_[i - 1] : dx);
}

std::vector<Layer*> Sequential::children() {
  std::vector<Layer*> out;
  for (auto& l : layers_) out.push_back(l.get());
  return out;
}

// ---- Residual ----------------------------------------------------------------------------
std::string Residual::describe() const {
  std::string inner;
  for (const auto& l : branch_.layers()) inner += (inner.empty() ? "" : ", ") + l->describe();
  return fmt::format("Residual(x + [{}])", inner);
}

void Residual::build(int in_time, int in_features, ParamStore& store, const std::string& prefix) {
  store_ = &store;
  in_time_ = out_time_ = in_time;
  in_features_ = out_features_ = in_features;
  branch_.build(in_time, in_features, store, prefix + "layers.");
  if (branch_.out_time() != in_time)
    throw std::invalid_argument(fmt::format("{}: residual branch changes the time length from {} to {} (a flatten inside); its "
                            "output shape must equal its input's",
                            where_, in_time, branch_.out_time()));
  if (branch_.out_features() != in_features)
    throw std::invalid_argument(fmt::format("{}: residual branch maps {} features to {}; its output width must equal its input ({})",
                            where_, in_features, branch_.out_features(), in_features));
}

void Residual::forward(const Mat& x, Mode mode) {
  x_ = &x;
  branch_.forward(x, mode);
  out_.resize(x.rows(), x.cols());
  out_ = x + branch_.out();
}

// out = x + f(x): dx = dout + (df/dx)^T dout.
void Residual::backward(const Mat& dout, Mat* dx) {
  branch_.backward(dout, dx ? &dbranch_ : nullptr);
  if (!dx) return;
  dx->resize(dout.rows(), dout.cols());
  *dx = dout + dbranch_;
}

// ---- SoftmaxCrossEntropy -----------------------------------------------------------------
namespace {
// probs := softmax of each row of logits (B, V), with each row's max and sum(exp(l - max)) for
// the loss. The exp runs over the whole block at once so it is in full vectors rather than row
// by row with a scalar tail (27 = 16 + 11); the row max, sums and divisions are row loops in
// 16-float vectors with a masked tail (on AVX-512; plain loops elsewhere). A row's sum adds its
// exps in 16 lanes, then the lanes (the order differs from a sequential sum in the last bits).
void softmax_rows(const Mat& logits, Mat& probs, Eigen::VectorXf& rmax, Eigen::VectorXf& rsum) {
  const Eigen::Index B = logits.rows(), V = logits.cols();
  probs.resize(B, V);
  rmax.resize(B);
  rsum.resize(B);
  const float* l = logits.data();
  float* p = probs.data();
#if defined(__AVX512F__)
  const auto tail = static_cast<__mmask16>((1u << (V % 16)) - 1u);
  const Eigen::Index full = V / 16 * 16;
  for (Eigen::Index b = 0; b < B; ++b) {
    const float* lr = l + b * V;
    float* pr = p + b * V;
    __m512 m = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
    for (Eigen::Index c = 0; c < full; c += 16) m = _mm512_max_ps(m, _mm512_loadu_ps(lr + c));
    if (tail) m = _mm512_mask_max_ps(m, tail, m, _mm512_maskz_loadu_ps(tail, lr + full));
    const float mx = _mm512_reduce_max_ps(m);
    rmax[b] = mx;
    const __m512 vm = _mm512_set1_ps(mx);
    for (Eigen::Index c = 0; c < full; c += 16) _mm512_storeu_ps(pr + c, _mm512_sub_ps(_mm512_loadu_ps(lr + c), vm));
    if (tail) _mm512_mask_storeu_ps(pr + full, tail, _mm512_sub_ps(_mm512_maskz_loadu_ps(tail, lr + full), vm));
  }
  probs.array() = probs.array().exp();  // contiguous: Eigen's vectorized exp
  for (Eigen::Index b = 0; b < B; ++b) {
    const float* pr = p + b * V;
    __m512 s = _mm512_setzero_ps();
    for (Eigen::Index c = 0; c < full; c += 16) s = _mm512_add_ps(s, _mm512_loadu_ps(pr + c));
    if (tail) s = _mm512_add_ps(s, _mm512_maskz_loadu_ps(tail, pr + full));
    rsum[b] = _mm512_reduce_add_ps(s);
  }
#else
  for (Eigen::Index b = 0; b < B; ++b) {
    const float* lr = l + b * V;
    float mx = lr[0];
    for (Eigen::Index c = 1; c < V; ++c) mx = std::max(mx, lr[c]);
    rmax[b] = mx;
    for (Eigen::Index c = 0; c < V; ++c) p[b * V + c] = lr[c] - mx;
  }
  probs.array() = probs.array().exp();
  rsum = probs.rowwise().sum();
#endif
}

// probs /= each row's sum (a division, as torch's softmax does).
void normalize_rows(Mat& probs, const Eigen::VectorXf& rsum) {
  const Eigen::Index B = probs.rows(), V = probs.cols();
  for (Eigen::Index b = 0; b < B; ++b) {
    float* __restrict pr = probs.data() + b * V;
    const float s = rsum[b];
    for (Eigen::Index c = 0; c < V; ++c) pr[c] = pr[c] / s;
  }
}
}  // namespace

// loss_i = logsumexp(l_i) - l_i[y_i], with the row max subtracted first so no exp overflows.
float SoftmaxCrossEntropy::forward(const Mat& logits, const int32_t* targets) {
  targets_ = targets;
  const Eigen::Index B = logits.rows(), V = logits.cols();
  softmax_rows(logits, probs_, rmax_, rsum_);
  normalize_rows(probs_, rsum_);
  double total = 0;
  for (Eigen::Index b = 0; b < B; ++b)
    total += static_cast<double>(std::log(rsum_[b]) + rmax_[b] - logits.data()[b * V + targets[b]]);
  return static_cast<float>(total / static_cast<double>(B));
}

// The reference: every term in double. Gradient checks difference it, so it must be exact.
double SoftmaxCrossEntropy::sum_loss(const Mat& logits, const int32_t* targets) {
  double total = 0;
  for (Eigen::Index b = 0; b < logits.rows(); ++b) {
    const double m = logits.row(b).maxCoeff();
    double s = 0;
    for (Eigen::Index c = 0; c < logits.cols(); ++c) s += std::exp(static_cast<double>(logits(b, c)) - m);
    total += std::log(s) + m - logits(b, targets[b]);
  }
  return total;
}

// Evaluation: float exps in full vectors (as the training step's), each row's loss summed in
// double. Agrees with sum_loss to ~1e-7 relative per row.
double SoftmaxCrossEntropy::sum_loss_fast(const Mat& logits, const int32_t* targets, Mat& scratch) {
  Eigen::VectorXf rmax, rsum;
  softmax_rows(logits, scratch, rmax, rsum);
  const Eigen::Index V = logits.cols();
  double total = 0;
  for (Eigen::Index b = 0; b < logits.rows(); ++b)
    total += static_cast<double>(std::log(rsum[b]) + rmax[b] - logits.data()[b * V + targets[b]]);
  return total;
}

// d loss / d logits = (softmax - onehot(y)) / B for the mean loss.
void SoftmaxCrossEntropy::backward(Mat* dlogits) const {
  const Eigen::Index B = probs_.rows();
  dlogits->resize(B, probs_.cols());
  *dlogits = probs_ / static_cast<float>(B);
  for (Eigen::Index b = 0; b < B; ++b) (*dlogits)(b, targets_[b]) -= 1.0f / static_cast<float>(B);
}

}  // namespace mm
