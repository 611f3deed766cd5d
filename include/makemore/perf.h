// Arithmetic accounting for benchmarks: the floating-point work of one training step, and the
// single-core FMA peak of the machine measured on the spot, so achieved GFLOP/s has a yardstick.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "makemore/data.h"
#include "makemore/model.h"

namespace mm {

// FLOPs of one training step's matrix products (forward x W, backward dW and dx; the first
// layer's dx too, since the embedding needs it): 3 * 2 * rows * fan_in * fan_out per Linear.
double step_matmul_flops(const Model& model, int batch);

// The kernel set in use: "avx512", "avx2" or "generic" on x86-64 (compiled into one binary and
// chosen from the CPU at the first use; MAKEMORE_KERNELS=NAME picks another the CPU runs),
// "generic" elsewhere, "native" in a -march=native build (MAKEMORE_NATIVE=ON).
std::string kernel_set();
std::vector<std::string> kernel_sets();        // this build's sets that this CPU runs, best first
void set_kernel_set(const std::string& name);  // one of kernel_sets(); mm::Error otherwise

// Peak float32 FMA throughput of one core in GFLOP/s (independent FMA chains in the widest
// vectors of the kernel set in use), measured for about `seconds`.
double measure_fma_peak_gflops(double seconds = 0.2);
const char* fma_vector_isa();
// The processor as /proc/cpuinfo names it ("AMD EPYC, family 25 model 17"), so that numbers
// from different machines are not compared by mistake; "unknown CPU" where it cannot be read.
std::string cpu_description();

// The process's peak resident memory so far, in MB (getrusage's ru_maxrss).
double peak_memory_mb();

}  // namespace mm

namespace mm {

// Where one training step's time goes: the minibatch gather, every layer's forward and backward
// (the layers inside a block too, below the block's row), the loss, the finiteness check and the
// optimizer update, each timed separately (steady_clock, so run it on a quiet machine) over
// `steps` steps after a warm-up. The step is the trainer's: the same Model calls in the same
// order, the layers timed from inside by a LayerProbe. Timing each part costs ~20 ns.
struct ProfileEntry {
  std::string what;  // "layers.0 Linear(30, 200) forward", "softmax + cross-entropy forward", ...
  std::string kind;  // the layer's role (matmul, normalization, activation, block ...), softmax, gather, optimizer, other
  double ns_per_step = 0;
  int depth = 0;       // 0: a part of the step; 1: inside the block above it, and so on
  bool group = false;  // a block's whole time: the sum of the rows below it one level deeper
};
struct StepProfile {
  std::vector<ProfileEntry> entries;
  double total_ns = 0;           // sum of the entries that are not groups
  int64_t non_finite_steps = 0;  // steps whose activations were not all finite (a diverged run)
};
StepProfile profile_steps(Model& model, const Config& cfg, const Examples& train, int64_t steps);

}  // namespace mm
