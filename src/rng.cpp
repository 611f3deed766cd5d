// The two random generators of the lecture: PyTorch 1.13.1's CPU generator (uniforms, randn,
// randint, multinomial with one sample) and Python's random (seed, getrandbits, shuffle).
// The exact algorithms, and the vectors that pin them down, are in
// docs/rng.md and tests/data/rng/.
#include "makemore/rng.h"

#include <cmath>
#include <cstring>
#include <sstream>
#include <stdexcept>

namespace mm {

namespace {

constexpr double kPi = 3.14159265358979323846;  // c10::pi<double>

// torch's normal_fill_16 for float data (the scalar kernel): turns 16 uniforms in d[0..16) into
// 16 normals. The float/double mix is deliberate: u1, u2 and the radius are float, theta is
// computed in double and rounded to float, and log/cos/sin are the float C library functions.
// That is what makes the results bit-identical to torch under ATEN_CPU_CAPABILITY=default.
void normal_fill_16(float* d) {
  for (int j = 0; j < 8; ++j) {
    const float u1 = 1.0f - d[j];  // [0,1) -> (0,1] so the log is finite
    const float u2 = d[j + 8];
    const float radius = std::sqrt(-2.0f * logf(u1));
    const float theta = static_cast<float>(2.0 * kPi * static_cast<double>(u2));
    // torch then applies "* std + mean" with std = 1, mean = 0; "+ 0" turns -0 into +0.
    d[j] = radius * cosf(theta) * 1.0f + 0.0f;
    d[j + 8] = radius * sinf(theta) * 1.0f + 0.0f;
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// TorchGenerator

std::string TorchGenerator::state() const {
  std::ostringstream out;
  out << engine_ << ' ';
  if (next_normal_) {
    uint64_t bits = 0;
    std::memcpy(&bits, &*next_normal_, sizeof bits);
    out << "normal " << bits;
  } else {
    out << "none";
  }
  return out.str();
}

bool TorchGenerator::set_state(const std::string& text) {
  std::istringstream in(text);
  std::mt19937 engine;
  std::string tag;
  if (!(in >> engine >> tag)) return false;
  std::optional<double> normal;
  if (tag == "normal") {
    uint64_t bits = 0;
    if (!(in >> bits)) return false;
    double v = 0;
    std::memcpy(&v, &bits, sizeof v);
    normal = v;
  } else if (tag != "none") {
    return false;
  }
  if (!(in >> std::ws).eof()) return false;
  engine_ = engine;
  next_normal_ = normal;
  return true;
}

void TorchGenerator::manual_seed(uint64_t seed) {
  engine_.seed(static_cast<std::mt19937::result_type>(seed & 0xffffffffULL));
  next_normal_.reset();
}

uint32_t TorchGenerator::random() { return static_cast<uint32_t>(engine_()); }

uint64_t TorchGenerator::random64() {
  const uint64_t hi = random();
  const uint64_t lo = random();
  return (hi << 32) | lo;
}

float TorchGenerator::uniform_float() { return static_cast<float>(random() & 0xFFFFFFu) * 0x1p-24f; }

double TorchGenerator::uniform_double() { return static_cast<double>(random64() & ((1ULL << 53) - 1)) * 0x1p-53; }

void TorchGenerator::randn(float* out, std::size_t n) {
  if (n >= 16) {
    // torch's normal_fill: all uniforms first, then Box-Muller over each full block of 16.
    for (std::size_t i = 0; i < n; ++i) out[i] = uniform_float();
    for (std::size_t b = 0; b + 16 <= n; b += 16) normal_fill_16(out + b);
    if (n % 16 != 0) {
      // The ragged tail: torch redraws 16 fresh uniforms over the last 16 slots (overwriting
      // normals already made) and transforms them as one more block.
      float* tail = out + (n - 16);
      for (std::size_t i = 0; i < 16; ++i) tail[i] = uniform_float();
      normal_fill_16(tail);
    }
    return;
  }
  // Small tensors: torch's normal_distribution<double>, one value per element, which makes two
  // normals per pair of uniforms and keeps the second in the generator for the next small draw.
  for (std::size_t i = 0; i < n; ++i) {
    double value;
    if (next_normal_) {
      value = *next_normal_;
      next_normal_.reset();
    } else {
      const double u1 = uniform_double();
      const double u2 = uniform_double();
      const double r = std::sqrt(-2.0 * std::log(1.0 - u2));
      const double theta = 2.0 * kPi * u1;
      next_normal_ = r * std::sin(theta);
      value = r * std::cos(theta);
    }
    out[i] = static_cast<float>(value * 1.0 + 0.0);  // * std + mean, in double, then to float
  }
}

void TorchGenerator::rand(float* out, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) out[i] = uniform_float();
}

void TorchGenerator::randint(int64_t lo, int64_t hi, int64_t* out, std::size_t n) {
  if (hi <= lo) throw std::invalid_argument("randint: need lo < hi");
  const uint64_t range = static_cast<uint64_t>(hi - lo);
  if (range > (1ULL << 32)) throw std::invalid_argument("randint: hi - lo must be <= 2^32");
  // torch uses one 32-bit draw per element while the range fits in 32 bits.
  // A 32-bit remainder when the range fits (the same value, a fraction of a 64-bit division).
  if (range <= 0xFFFFFFFFULL) {
    const uint32_t r32 = static_cast<uint32_t>(range);
    for (std::size_t i = 0; i < n; ++i) out[i] = lo + static_cast<int64_t>(random() % r32);
  } else {
    for (std::size_t i = 0; i < n; ++i) out[i] = lo + static_cast<int64_t>(random() % range);
  }
}

int64_t TorchGenerator::multinomial1(const float* probs, std::size_t n) {
  // torch checks the row before drawing anything, so a bad row consumes no randomness.
  if (n == 0) throw std::invalid_argument("multinomial1: empty row");
  double sum = 0.0;
  for (std::size_t i = 0; i < n; ++i) {
    if (!(probs[i] >= 0.0f) || std::isinf(probs[i]))
      throw std::invalid_argument("multinomial1: weights must be finite and non-negative");
    sum += probs[i];
  }
  if (!(sum > 0.0)) throw std::invalid_argument("multinomial1: weights sum to zero");
  // torch 1.13.1 takes the Gumbel-max fast path for one sample: q = empty_like(p).exponential_(1),
  // then argmax(p / q). Without MKL (Debian's build) exponential_ draws each element as
  // (float)(-log(1 - u)) with u a 53-bit double uniform (two 32-bit draws), in element order.
  // p / q is a float division; argmax keeps the first maximum, and a NaN (0/0, only if a draw
  // gives exactly q = 0) counts as the maximum, as in torch.
  int64_t best = 0;
  float best_value = 0.0f;
  for (std::size_t i = 0; i < n; ++i) {
    const float q = static_cast<float>(-1.0 / 1.0 * std::log(1.0 - uniform_double()));
    const float value = probs[i] / q;
    const bool take = i == 0 || (!std::isnan(best_value) && (std::isnan(value) || value > best_value));
    if (take) {
      best = static_cast<int64_t>(i);
      best_value = value;
    }
  }
  return best;
}

// ---------------------------------------------------------------------------------------------
// PyRandom: CPython's _randommodule.c

void PyRandom::seed_int(uint64_t seed) {
  // init_genrand(19650218), as init_by_array starts.
  mt_[0] = 19650218u;
  for (uint32_t i = 1; i < 624; ++i) mt_[i] = 1812433253u * (mt_[i - 1] ^ (mt_[i - 1] >> 30)) + i;
  // The key is |seed| as 32-bit words, least significant first, at least one word.
  uint32_t key[2] = {static_cast<uint32_t>(seed & 0xffffffffu), static_cast<uint32_t>(seed >> 32)};
  const uint32_t key_length = key[1] != 0 ? 2u : 1u;
  uint32_t i = 1, j = 0;
  for (uint32_t k = 624 > key_length ? 624 : key_length; k != 0; --k) {
    mt_[i] = (mt_[i] ^ ((mt_[i - 1] ^ (mt_[i - 1] >> 30)) * 1664525u)) + key[j] + j;
    ++i;
    ++j;
    if (i >= 624) {
      mt_[0] = mt_[623];
      i = 1;
    }
    if (j >= key_length) j = 0;
  }
  for (uint32_t k = 623; k != 0; --k) {
    mt_[i] = (mt_[i] ^ ((mt_[i - 1] ^ (mt_[i - 1] >> 30)) * 1566083941u)) - i;
    ++i;
    if (i >= 624) {
      mt_[0] = mt_[623];
      i = 1;
    }
  }
  mt_[0] = 0x80000000u;  // guarantees a non-zero state
  index_ = 624;
}

uint32_t PyRandom::next32() {
  // genrand_uint32: regenerate the whole state every 624 outputs, then temper.
  constexpr uint32_t kUpper = 0x80000000u, kLower = 0x7fffffffu, kMatrixA = 0x9908b0dfu;
  if (index_ >= 624) {
    for (int k = 0; k < 624; ++k) {
      const uint32_t y = (mt_[k] & kUpper) | (mt_[(k + 1) % 624] & kLower);
      mt_[k] = mt_[(k + 397) % 624] ^ (y >> 1) ^ ((y & 1u) ? kMatrixA : 0u);
    }
    index_ = 0;
  }
  uint32_t y = mt_[index_++];
  y ^= y >> 11;
  y ^= (y << 7) & 0x9d2c5680u;
  y ^= (y << 15) & 0xefc60000u;
  y ^= y >> 18;
  return y;
}

uint32_t PyRandom::getrandbits(int k) {
  if (k < 1 || k > 32) throw std::invalid_argument("getrandbits: need 1 <= k <= 32");
  return next32() >> (32 - k);
}

uint64_t PyRandom::getrandbits64(int k) {
  // CPython fills k > 32 bits from 32-bit words, least significant word first; the last word
  // is shifted down to the bits still needed.
  uint64_t result = 0;
  for (int shift = 0; k > 0; shift += 32, k -= 32) {
    uint32_t word = next32();
    if (k < 32) word >>= (32 - k);
    result |= static_cast<uint64_t>(word) << shift;
  }
  return result;
}

uint64_t PyRandom::randbelow(uint64_t n) {
  if (n == 0) throw std::invalid_argument("randbelow: need n >= 1");
  int k = 0;  // bit length of n (not n - 1: n = 1 still draws, as CPython does)
  for (uint64_t m = n; m != 0; m >>= 1) ++k;
  uint64_t r = getrandbits64(k);
  while (r >= n) r = getrandbits64(k);
  return r;
}

}  // namespace mm
