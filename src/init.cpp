// Initialization schemes. Float roundings follow the lecture's tensor expressions exactly
// (e.g. `randn * (5/3) / 30**0.5` is a float multiply then a float divide) so that the
// lecture's seed reproduces the notebook's weights.
#include "makemore/init.h"

#include <fmt/format.h>

#include <cmath>
#include <cstdlib>
#include <vector>

#include "makemore/error.h"
#include "makemore/layer_kinds.h"

namespace mm {

// A nonlinearity's gain is a trait of its layer kind (the registry's); "identity" is torch's
// other name for no nonlinearity.
double kaiming_gain(const std::string& name) {
  if (const LayerKind* k = find_layer_kind(name); k && k->traits.kaiming_gain) return *k->traits.kaiming_gain;
  if (name == "identity") return 1.0;
  char* end = nullptr;
  double v = std::strtod(name.c_str(), &end);
  if (!name.empty() && end && *end == '\0' && std::isfinite(v) && v > 0) return v;
  std::string names;
  for (const LayerKind* k : layer_kinds())
    if (k->traits.kaiming_gain) names += std::string(k->name) + ", ";
  throw Error(fmt::format("unknown Kaiming gain '{}'; use {}identity or a positive number", name, names));
}

namespace {
// torch's uniform_(from, to) on a float tensor: u * (to - from) + from, in float with two
// roundings. The product goes through a volatile so that -march=native's FMA contraction cannot
// fuse the two into one rounding, which differs from torch in the last bit (tests/test_layers.cpp
// checks xavier-uniform's bits against torch). Initialization only: the store costs nothing.
void torch_uniform(float* out, std::size_t n, double bound_d, TorchGenerator& gen) {
  gen.rand(out, n);
  const float from = static_cast<float>(-bound_d), to = static_cast<float>(bound_d);
  for (std::size_t i = 0; i < n; ++i) {
    volatile float product = out[i] * (to - from);
    out[i] = product + from;
  }
}
}  // namespace

void init_fill(const InitSpec& spec, int fan_in, int rows, int cols, float* out, TorchGenerator& gen) {
  using K = InitSpec::Kind;
  const std::size_t n = static_cast<std::size_t>(rows) * static_cast<std::size_t>(cols);
  const float scale = static_cast<float>(spec.scale);
  switch (spec.kind) {
    case K::Zeros:
      for (std::size_t i = 0; i < n; ++i) out[i] = 0.0f;
      break;
    case K::Ones:
      for (std::size_t i = 0; i < n; ++i) out[i] = 1.0f * scale;
      break;
    case K::Constant:
      for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<float>(spec.value);
      break;
    case K::Normal:
      gen.randn(out, n);
      if (spec.scale != 1.0)
        for (std::size_t i = 0; i < n; ++i) out[i] = out[i] * scale;
      break;
    case K::Kaiming: {
      gen.randn(out, n);
      const float gain = static_cast<float>(kaiming_gain(spec.gain));
      const float denom = static_cast<float>(std::sqrt(static_cast<double>(fan_in)));
      for (std::size_t i = 0; i < n; ++i) out[i] = out[i] * gain / denom;
      if (spec.scale != 1.0)
        for (std::size_t i = 0; i < n; ++i) out[i] = out[i] * scale;
      break;
    }
    case K::TorchLinear: {
      // Python's arithmetic: gain = sqrt(2 / (1 + a^2)), a = sqrt(5); bound = sqrt(3) * gain / sqrt(fan_in).
      const double a = std::sqrt(5.0);
      const double bound = std::sqrt(3.0) * (std::sqrt(2.0 / (1.0 + a * a)) / std::sqrt(static_cast<double>(fan_in)));
      std::vector<float> t(n);
      torch_uniform(t.data(), n, bound, gen);  // torch's weight is (fan_out, fan_in) = (cols, rows)
      for (int r = 0; r < rows; ++r)
        for (int c = 0; c < cols; ++c) out[static_cast<std::size_t>(r) * cols + c] = t[static_cast<std::size_t>(c) * rows + r];
      break;
    }
    case K::TorchLinearBias:
      torch_uniform(out, n, 1.0 / std::sqrt(static_cast<double>(fan_in)), gen);
      break;
    case K::XavierNormal:
    case K::XavierUniform: {
      // Python's arithmetic in torch.nn.init, then normal_(0, std) / uniform_(-a, a) on float data:
      // for n >= 16 normal_ is randn's kernel times a float std (the n < 16 path rounds once more).
      const double fan_out = static_cast<double>(n) / static_cast<double>(fan_in > 0 ? fan_in : 1);
      const double sd = kaiming_gain(spec.gain) * std::sqrt(2.0 / (static_cast<double>(fan_in) + fan_out));
      if (spec.kind == K::XavierUniform) {
        torch_uniform(out, n, std::sqrt(3.0) * sd, gen);
      } else {
        gen.randn(out, n);
        const float s = static_cast<float>(sd);
        for (std::size_t i = 0; i < n; ++i) out[i] = out[i] * s + 0.0f;
      }
      if (spec.scale != 1.0)
        for (std::size_t i = 0; i < n; ++i) out[i] = out[i] * scale;
      break;
    }
    case K::Lsuv: {
      gen.randn(out, n);
      const float denom = static_cast<float>(std::sqrt(static_cast<double>(fan_in)));
      for (std::size_t i = 0; i < n; ++i) out[i] = out[i] / denom;
      break;
    }
  }
}

bool needs_matrix(InitSpec::Kind kind) {
  return kind == InitSpec::Kind::XavierNormal || kind == InitSpec::Kind::XavierUniform || kind == InitSpec::Kind::Lsuv;
}

std::string describe(const InitSpec& spec) {
  using K = InitSpec::Kind;
  switch (spec.kind) {
    case K::Zeros:
      return "zeros";
    case K::Ones:
      return spec.scale == 1.0 ? "ones" : fmt::format("ones * {}", spec.scale);
    case K::Constant:
      return fmt::format("constant {}", spec.value);
    case K::Normal:
      return spec.scale == 1.0 ? "N(0,1)" : fmt::format("N(0,1) * {}", spec.scale);
    case K::Kaiming: {
      std::string s = fmt::format("kaiming(gain {})", spec.gain);
      if (spec.scale != 1.0) s += fmt::format(" * {}", spec.scale);
      return s;
    }
    case K::TorchLinear:
    case K::TorchLinearBias:
      return "torch-default U(-1/sqrt(fan_in), 1/sqrt(fan_in))";
    case K::XavierNormal:
    case K::XavierUniform: {
      std::string s = fmt::format("{}(gain {})", spec.kind == K::XavierNormal ? "xavier-normal" : "xavier-uniform", spec.gain);
      if (spec.scale != 1.0) s += fmt::format(" * {}", spec.scale);
      return s;
    }
    case K::Lsuv:
      return fmt::format("lsuv(N(0,1)/sqrt(fan_in), then unit output variance on {} examples)", spec.lsuv_batch);
  }
  return "?";
}

}  // namespace mm
