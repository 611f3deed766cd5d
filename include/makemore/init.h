// Initialization schemes, one per parameter, drawn in declaration order from the run's
// generator so a seed fixes the weights (and the lecture's seed gives the notebook's).
#pragma once
#include <string>

#include "makemore/rng.h"

namespace mm {

struct InitSpec {
  enum class Kind {
    Zeros,         // no draw
    Ones,          // no draw
    Constant,      // value; no draw
    Normal,        // randn * scale (draws even when scale is 0, as the lecture's `randn * 0`)
    Kaiming,       // randn * gain / sqrt(fan_in): two float roundings, as the lecture writes it
    TorchLinear,   // nn.Linear's default weight: kaiming_uniform(a=sqrt(5)), bound 1/sqrt(fan_in),
                   // drawn in torch's (fan_out, fan_in) order and stored transposed
    TorchLinearBias,  // nn.Linear's default bias: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
  };
  Kind kind = Kind::Zeros;
  double scale = 1.0;      // Normal: the factor; Kaiming: an extra factor applied after
  double value = 0.0;      // Constant
  std::string gain = "tanh";  // Kaiming: nonlinearity name (linear, tanh, relu, sigmoid) or a number
};

// Kaiming gain by nonlinearity name: linear/identity 1, tanh 5/3, relu sqrt(2), sigmoid 1;
// a decimal number is taken as the gain itself. Throws mm::Error for an unknown name.
double kaiming_gain(const std::string& name);

// Fills a (rows, cols) row-major parameter per spec. fan_in is used by Kaiming and TorchLinear.
void init_fill(const InitSpec& spec, int fan_in, int rows, int cols, float* out, TorchGenerator& gen);

std::string describe(const InitSpec& spec);

}  // namespace mm
