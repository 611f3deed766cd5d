// Initialization schemes, one per parameter, drawn in declaration order from the run's
// generator so a seed fixes the weights (and the lecture's seed gives the notebook's).
#pragma once
#include <string>

#include "makemore/rng.h"

namespace mm {

struct InitSpec {
  enum class Kind {
    Zeros,            // no draw
    Ones,             // no draw
    Constant,         // value; no draw
    Normal,           // randn * scale (draws even when scale is 0, as the lecture's `randn * 0`)
    Kaiming,          // randn * gain / sqrt(fan_in): two float roundings, as the lecture writes it
    TorchLinear,      // nn.Linear's default weight: kaiming_uniform(a=sqrt(5)), bound 1/sqrt(fan_in),
                      // drawn in torch's (fan_out, fan_in) order and stored transposed
    TorchLinearBias,  // nn.Linear's default bias: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    XavierNormal,     // torch.nn.init.xavier_normal_: randn * std, std = gain*sqrt(2/(fan_in+fan_out))
    XavierUniform,    // xavier_uniform_: U(-a, a), a = gain*sqrt(6/(fan_in+fan_out))
    Lsuv,             // randn / sqrt(fan_in), then Model::init's data pass rescales to unit output variance
  };
  Kind kind = Kind::Zeros;
  double scale = 1.0;         // Normal: the factor; Kaiming: an extra factor applied after
  double value = 0.0;         // Constant
  std::string gain = "tanh";  // Kaiming, Xavier*: nonlinearity name (linear, tanh, relu, sigmoid) or a number
  // Lsuv: examples in the data batch, tolerance on |var - 1|, most rescaling rounds per layer.
  int lsuv_batch = 512;
  double lsuv_tol = 0.1;
  int lsuv_max_iter = 10;
};

// True for the schemes that need a weight matrix's fan_in and fan_out (Xavier, LSUV).
bool needs_matrix(InitSpec::Kind kind);

// Kaiming gain by nonlinearity name: linear/identity 1, tanh 5/3, relu sqrt(2), sigmoid 1;
// a decimal number is taken as the gain itself. Throws mm::Error for an unknown name.
double kaiming_gain(const std::string& name);

// Fills a (rows, cols) row-major parameter per spec. fan_in is used by Kaiming, TorchLinear and
// Lsuv; Xavier takes fan_out = rows * cols / fan_in (a Linear's weight is (fan_in, fan_out), an
// Embedding's (vocab, n_embd) with fan_in n_embd: either way fan_in + fan_out = rows + cols).
void init_fill(const InitSpec& spec, int fan_in, int rows, int cols, float* out, TorchGenerator& gen);

std::string describe(const InitSpec& spec);

}  // namespace mm
