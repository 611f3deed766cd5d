// The token path of a Linear that reads the embedding's rows (layers.h, docs/backward.md): the
// pair table and the forward and backward over distinct (position, token) pairs; their kernels,
// AVX-512 and portable, are in kernels/kernels.cpp. Linear::forward / backward (layers.cpp)
// choose the path.
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <type_traits>

#include "kernels/kernels.h"
#include "makemore/error.h"
#include "makemore/layers.h"

namespace mm {

namespace {
// The AVX-512 kernels exist in the kernel set in use (kernels.h).
bool simd_token_kernels() { return kernels::kernels().tokens_simd.pairs_forward != nullptr; }
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
      throw Error(
          "MAKEMORE_TOKEN_LINEAR=simd: the kernel set in use has no AVX-512 token kernels; unset it or use off or portable");
    return TokenLinear::Simd;
  }
  throw Error(fmt::format("MAKEMORE_TOKEN_LINEAR={}: unknown value; use off, portable or simd (or unset it)", env));
}
std::atomic<TokenLinear>& token_linear_ref() {
  static std::atomic<TokenLinear> t{token_linear_default()};
  return t;
}

// The token path's kernels (kernels::Table::Tokens): the AVX-512 ones in Simd mode, the
// portable loops otherwise, of the kernel set in use.
const kernels::Table::Tokens& token_kernels() {
  const kernels::Table& k = kernels::kernels();
  return token_linear() == TokenLinear::Simd && k.tokens_simd.pairs_forward ? k.tokens_simd : k.tokens_portable;
}

// m holds at least `rows` rows of `cols`: resized only when it holds fewer (the pairs of a
// batch vary from step to step; a resize to each step's count would allocate every step).
void rows_at_least(Mat& m, int rows, int cols) {
  if (m.rows() < rows || m.cols() != cols) m.resize(std::max<Eigen::Index>(rows, m.rows()), cols);
}

}  // namespace

bool token_linear_available(TokenLinear t) { return t != TokenLinear::Simd || simd_token_kernels(); }
void set_token_linear(TokenLinear t) {
  if (!token_linear_available(t))
    throw std::invalid_argument("the SIMD token kernels are not in the kernel set in use (no AVX-512)");
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
  rows_at_least(pair_, rows * T, ldp);  // P <= rows * T: allocated once, not per step
  const kernels::Table::Tokens& k = token_kernels();
  for (std::size_t j = 0; j < uT; ++j) {
    const int p0 = pos_begin_[j], n = pos_begin_[j + 1] - p0;
    k.pairs_forward(C, slot_token_.data() + p0, n, E, W + j * uE * uN, N, pair_.data() + static_cast<std::size_t>(p0) * uL, ldp);
  }
  k.gather_rows(pair_.data(), ldp, row_slot_.data(), rows, T, N, bias_ ? store_->data(param_ids_[1]) : nullptr, output().data());
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
  rows_at_least(pair_, rows * T, ldg);
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
  const kernels::Table::Tokens& k = token_kernels();
  k.pair_sums(dout.data(), slot_row_begin_.data(), slot_rows_.data(), P, N, G, ldg);
  const float* C = store_->data(emb.weight_id());
  const float* W = store_->data(param_ids_[0]);
  float* dW = store_->grad(param_ids_[0]);
  rows_at_least(dpair_, rows * T, E);
  for (std::size_t j = 0; j < uT; ++j) {
    const int p0 = pos_begin_[j], n = pos_begin_[j + 1] - p0;
    const float* Gj = G + static_cast<std::size_t>(p0) * uL;
    k.pairs_dweight(C, slot_token_.data() + p0, Gj, ldg, n, E, N, dW + j * uE * uN);
    k.pairs_dembed(Gj, ldg, n, E, W + j * uE * uN, N, dpair_.data() + static_cast<std::size_t>(p0) * uE);
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
