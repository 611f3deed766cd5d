// The small matrix products of the training step behind one interface, so a layer never knows
// which backend ran: Eigen (portable, always there) or libxsmm (JIT kernels for the running
// CPU, when built with it). Row-major throughout, as the layers store their matrices.
#pragma once
#include <cstddef>
#include <functional>
#include <string>

namespace mm {

enum class Op { N, T };
enum class GemmBackend { Eigen, Xsmm };

// The rows (or columns) of a product's result each of t threads computes: whole blocks of 16,
// t of them covering all rows. Optimizer::update splits a matrix's rows the same way.
inline std::size_t rows_per_thread(std::size_t rows, int t) {
  const auto n = static_cast<std::size_t>(t);
  return ((rows + n - 1) / n + 15) / 16 * 16;
}

// Which block of those the thread numbered `thread` takes (parallel_run's numbering; 0 is the
// caller): the last, so that the calling thread ends a pipelined x W (gemm.cpp) and holds its
// result for the layers after it, which run on the caller alone.
inline int block_of(int thread, int t) { return t - 1 - thread; }

// Products of at least this many multiply-adds split over threads() threads (parallel.h): a
// weight's gradient by its rows, x W with a wide W as a pipeline over W's rows, the others by
// C's columns (gemm.cpp); the lecture's products (~0.2M) stay on one core.
inline constexpr double kParallelMinMacs = 4.0e6;

// C (M x N) = op(A) (M x K) * op(B) (K x N), plus C when accumulate. Leading dimensions are
// the row lengths of the matrices as stored (lda = columns of A as stored, ...).
void gemm(Op opa, Op opb, int M, int N, int K, const float* A, int lda, const float* B, int ldb, float* C, int ldc,
          bool accumulate = false);

// A Linear's backward for a wide weight W (In x Out, an L2's worth or more): dW = x^T dout and,
// where dx is not null, dx = dout W^T, in blocks of W's rows. After block [r0, r1)'s rows of dW
// and columns of dx, rows_done(r0, r1) runs on the thread that computed them, while those rows
// of W and dW are in its core's cache (the update inside the backward applies them there instead
// of streaming W and dW from memory afterwards). Each thread takes the rows gemm() gives it, and
// every output comes from the kernel gemm()'s two calls use, so the bits are those calls'. False,
// with nothing written and rows_done never called, where this does not apply (the Eigen
// backend, a W that fits the L2, a shape gemm() computes another way).
using RowsDone = std::function<void(int r0, int r1)>;
bool gemm_linear_backward_rows(int M, int In, int Out, const float* x, const float* dout, const float* W, float* dW, float* dx,
                               const RowsDone& rows_done);

bool gemm_backend_available(GemmBackend b);
// Process-wide choice. The default is libxsmm where available, else Eigen; the environment
// variable MAKEMORE_GEMM=eigen|xsmm overrides it. Throws mm::Error for an unavailable backend.
void set_gemm_backend(GemmBackend b);
GemmBackend gemm_backend();
const char* gemm_backend_name(GemmBackend b);

}  // namespace mm
