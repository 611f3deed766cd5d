// The numerical kernels of a training step, compiled once per instruction set (src/kernels/
// kernels.cpp, built by CMakeLists.txt with -march=x86-64-v4, -march=x86-64-v3 and the plain
// x86-64 baseline, or -march=native in a native build) and chosen once per process from the
// CPU (kernels(): cpuid, or MAKEMORE_KERNELS). Everything else in the library is compiled for the
// baseline, so one binary runs on any x86-64 and is as fast as a -march=native build where the
// time goes. Private to the library: not installed.
//
// Each set lives in its own namespace (mm::kernels::avx512, ::avx2, ::generic, ::native) and its
// object file keeps only that namespace's symbols global (objcopy), so inline functions of Eigen
// or the standard library compiled for AVX-512 can never be picked by the linker for code that
// runs on an older CPU. Pointers and sizes only: no type of the rest of the library crosses.
#pragma once
#include <cstddef>
#include <cstdint>

namespace mm::kernels {

using Index = std::ptrdiff_t;

struct SgdArgs {
  float neg_lr = 0, weight_decay = 0, momentum = 0, keep = 1;  // keep = 1 - dampening
  bool use_wd = false, use_mom = false, first = false, nesterov = false;
};
struct RmspropArgs {
  float neg_lr = 0, weight_decay = 0, alpha = 0, one_m_alpha = 0, eps = 0, momentum = 0;
  bool use_wd = false, use_mom = false, centered = false;
};
struct AdamArgs {
  float neg_step_size = 0, bc2_sqrt = 0, b1 = 0, one_m_b1 = 0, b2 = 0, one_m_b2 = 0, eps = 0, weight_decay = 0, shrink = 1;
  bool decoupled = false, coupled_wd = false, amsgrad = false;
};

// One set of kernels. The comments say what each computes; layers.cpp, token_linear.cpp,
// optim.cpp, gemm.cpp and perf.cpp say why (they call these in the places their loops were).
struct Table {
  const char* name;     // "avx512", "avx2", "generic", "native"
  const char* vectors;  // what the FMA peak measures: "avx512 (16 floats)", ...

  // out[r] = C[tokens[r]] (width floats each), r < n.
  void (*embedding_rows)(const float* C, const int32_t* tokens, std::size_t n, std::size_t width, float* out);
  // dC (vocab x width) = 0, then dC[tokens[r]] += dout[r], r in order.
  void (*embedding_scatter)(float* dC, std::size_t vocab, std::size_t width, const int32_t* tokens, std::size_t n,
                            const float* dout);
  // out[r] += b, each row of (rows, cols).
  void (*add_bias_rows)(float* out, int rows, int cols, const float* b);
  // sum[c] = sum over the n rows of x[r][c], rows in order.
  void (*column_sums)(const float* x, Index n, Index C, float* sum);

  // BatchNorm1d over C columns of an (n, ld) row-major block (ld = C for a whole layer; a
  // layer split over threads gives each its columns, the per-column arrays offset to match).
  // In training: mean, the variance divided by div, inv = 1 / sqrt(var + eps), and the running
  // statistics' moving averages (rstat: of the std or of the variance).
  void (*bn_statistics)(const float* x, Index n, Index C, Index ld, float* mean, float* var, float* inv, float* rmean,
                        float* rstat, float div, float eps, float keep, float momentum, bool running_std);
  // out = gamma * (x - mean) * inv + beta row by row; xhat (may be null) = (x - mean) * inv.
  void (*bn_normalize)(const float* x, Index n, Index C, Index ld, const float* mean, const float* inv, const float* gamma,
                       const float* beta, float* xhat, float* out);
  // dgamma = sum of d * xhat, dbeta = sum of d over the rows, in order.
  void (*bn_grad_sums)(const float* d, const float* xhat, Index n, Index C, Index ld, float* dgamma, float* dbeta);
  // dx[r] = a * d[r] - b * xhat[r] - c0 (b, c0 null: dx[r] = a * d[r]).
  void (*bn_dx)(const float* d, const float* xhat, Index n, Index C, Index ld, const float* a, const float* b, const float* c0,
                float* dx);

  // GroupNorm / LayerNorm (layers.cpp): per row and group of C / G features, the statistics in
  // double; xhat, inv_std (n, G) and out = gamma * xhat + beta (gamma, beta null: out = xhat).
  void (*group_norm_forward)(const float* x, Index n, Index C, Index G, double eps, const float* gamma, const float* beta,
                             float* xhat, float* inv_std, float* out);
  // dgamma, dbeta (when gamma is not null) and dx (when not null).
  void (*group_norm_backward)(const float* dout, const float* xhat, const float* inv_std, Index n, Index C, Index G,
                              const float* gamma, float* dgamma, float* dbeta, float* dx);
  // out = a + b (n floats: a residual block's sum and its gradient).
  void (*add)(const float* a, const float* b, Index n, float* out);
  // No NaN or infinity among the n floats (what Eigen's allFinite() says, without its early
  // exit: one branch-free pass over the bits).
  bool (*all_finite)(const float* x, Index n);

  // out = tanh(x); dx = dout * (1 - out^2) (n floats, 64-byte aligned). tanh_forward returns
  // whether every x was finite (all_finite(x, n)), checked a slice at a time right after the
  // slice's tanh read it, so that its input needs no later pass (Model::outputs_finite).
  bool (*tanh_forward)(const float* x, Index n, float* out);
  void (*tanh_backward)(const float* dout, const float* out, Index n, float* dx);

  // p (B, V) = exp(l - row max), rmax = the row maxima, rsum = the rows' sums of p.
  void (*softmax_rows)(const float* logits, Index B, Index V, float* p, float* rmax, float* rsum);
  // p[b] /= rsum[b].
  void (*normalize_rows)(float* p, Index B, Index V, const float* rsum);

  // The first Linear's token path (token_linear.cpp): the portable loops, and the AVX-512 ones
  // (null in a set without them).
  struct Tokens {
    void (*pairs_forward)(const float* C, const int32_t* tok, int n, int E, const float* Wj, int N, float* P, int ldp);
    void (*pairs_dweight)(const float* C, const int32_t* tok, const float* G, int ldg, int n, int E, int N, float* dWj);
    void (*pairs_dembed)(const float* G, int ldg, int n, int E, const float* Wj, int N, float* D);
    void (*pair_sums)(const float* dout, const int32_t* begin, const int32_t* slot_rows, int P, int N, float* G, int ldg);
    void (*gather_rows)(const float* P, int ldp, const int32_t* row_slot, int rows, int T, int N, const float* bias, float* out);
  };
  Tokens tokens_portable, tokens_simd;

  // out (cols x rows, row stride ldo) = in (rows x cols, row stride ldi) transposed, in 16 x 16
  // register blocks (null in a set without AVX-512: gemm.cpp then uses libxsmm's, half as fast).
  void (*transpose)(const float* in, Index rows, Index cols, Index ldi, float* out, Index ldo);

  // Row-major C (M x N, ldc) = op(A) op(B) (+ C when accumulate), through Eigen; op: transpose
  // when the flag is set.
  void (*gemm_eigen)(bool ta, bool tb, int M, int N, int K, const float* A, int lda, const float* B, int ldb, float* C, int ldc,
                     bool accumulate);

  // The optimizers' element loops over [k0, k1) (optim.cpp). buf, sq, ga, m, v, vmax: the
  // optimizer's state buffers.
  void (*sgd_plain)(float* p, const float* g, float neg_lr, std::size_t k0, std::size_t k1);
  void (*sgd)(float* p, const float* g, float* buf, const SgdArgs& a, std::size_t k0, std::size_t k1);
  void (*rmsprop)(float* p, const float* g, float* buf, float* sq, float* ga, const RmspropArgs& a, std::size_t k0,
                  std::size_t k1);
  void (*adam)(float* p, const float* g, float* m, float* v, float* vmax, const AdamArgs& a, std::size_t k0, std::size_t k1);

  // The best single-core FMA rate of this set's vectors over `seconds`, in GFLOP/s.
  double (*fma_peak_gflops)(double seconds);
};

// The set this process uses: the best the CPU runs, or MAKEMORE_KERNELS=avx512|avx2|generic
// (an unknown name, or one the CPU or the build lacks, is an mm::Error naming the choices).
const Table& kernels();

}  // namespace mm::kernels
