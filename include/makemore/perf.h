// Arithmetic accounting for benchmarks: the floating-point work of one training step, and the
// single-core FMA peak of the machine measured on the spot, so achieved GFLOP/s has a yardstick.
#pragma once

#include "makemore/model.h"

namespace mm {

// FLOPs of one training step's matrix products (forward x W, backward dW and dx; the first
// layer's dx too, since the embedding needs it): 3 * 2 * rows * fan_in * fan_out per Linear.
double step_matmul_flops(const Model& model, int batch);

// Peak float32 FMA throughput of one core in GFLOP/s (independent FMA chains in the widest
// vectors this build targets), measured for about `seconds`.
double measure_fma_peak_gflops(double seconds = 0.2);
const char* fma_vector_isa();

}  // namespace mm
