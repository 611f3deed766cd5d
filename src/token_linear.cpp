// The token path of a Linear that reads the embedding's rows (layers.h, docs/backward.md): the
// pair table, the forward and backward over distinct (position, token) pairs, and their
// kernels, AVX-512 and portable. Linear::forward / backward (layers.cpp) choose the path.
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <type_traits>

#include "makemore/error.h"
#include "makemore/layers.h"

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace mm {

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

// out[b] = (sum over positions j of P[pair (j, token[b][j])]) + bias, P = C[v] @ W_j once per
// distinct pair.
void Linear::forward_tokens(const Mat& x) {
  const Embedding& emb = *tokens_from_;
  const int rows = static_cast<int>(x.rows()), E = emb.n_embd(), V = emb.vocab_size(), T = in_features_ / E, N = fan_out_;
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

// G[pair] = the dout rows of the examples that hold the pair, added in row order (the first
// copied); then dW_j = C[pairs of j]^T G_j (every row of W belongs to one position) and
// dC[v] = the sum over the pairs (j, v), j in order, of G[pair] @ W_j^T, written over the
// embedding's gradient.
void Linear::backward_tokens(const Mat& dout) {
  const Embedding& emb = *tokens_from_;
  const int rows = static_cast<int>(dout.rows()), E = emb.n_embd(), V = emb.vocab_size(), T = in_features_ / E, N = fan_out_;
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
      slot_rows_[static_cast<std::size_t>(slot_cursor_[static_cast<std::size_t>(row_slot_[b * uT + j])]++)] =
          static_cast<int32_t>(b);
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

}  // namespace mm
