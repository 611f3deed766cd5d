// Every random draw of the system: a generator that reproduces PyTorch's CPU generator
// (torch.Generator().manual_seed(s)) draw for draw, and Python's random.seed / shuffle.
// See ../shared/reference/rng/ALGORITHM.md. Draw sites take a generator explicitly.
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace mm {

// PyTorch's CPU generator (MT19937) with the same float/double uniforms, randn (the scalar
// kernel: bit-exact; the n < 16 double path keeps its spare normal as torch does), randint and
// multinomial (one category, as torch.multinomial(p, 1, generator=g) draws it).
class TorchGenerator {
 public:
  static constexpr uint64_t kDefaultSeed = 2147483647ULL;
  explicit TorchGenerator(uint64_t seed = kDefaultSeed) { manual_seed(seed); }

  void manual_seed(uint64_t seed);
  uint32_t random();        // next 32-bit output
  uint64_t random64();      // two draws, the first the high half
  float uniform_float();    // (random() & 0xFFFFFF) * 2^-24
  double uniform_double();  // (random64() & (2^53-1)) * 2^-53

  // torch.randn(n) into out[0..n): fills as torch does for a float tensor of n elements.
  void randn(float* out, std::size_t n);
  // torch.rand(n): n float uniforms.
  void rand(float* out, std::size_t n);
  // torch.randint(lo, hi, (n,)): lo + random() % (hi - lo), in order (hi - lo < 2^32).
  void randint(int64_t lo, int64_t hi, int64_t* out, std::size_t n);
  // torch.multinomial(probs, 1, generator=g) for one row of n non-negative weights.
  int64_t multinomial1(const float* probs, std::size_t n);

  // The whole state as text (the engine's 624 words and position, and the kept normal), to
  // continue a stream exactly in another process; set_state returns false for text that is not
  // one, leaving the generator as it was.
  std::string state() const;
  bool set_state(const std::string& text);

 private:
  std::mt19937 engine_;
  std::optional<double> next_normal_;  // torch's kept spare of the n < 16 path
};

// Python's random module: random.seed(int), getrandbits(k<=32), _randbelow, shuffle.
class PyRandom {
 public:
  explicit PyRandom(uint64_t seed = 42) { seed_int(seed); }
  void seed_int(uint64_t seed);
  uint32_t getrandbits(int k);     // 1 <= k <= 32
  uint64_t randbelow(uint64_t n);  // n >= 1
  template <class T>
  void shuffle(std::vector<T>& x) {
    for (std::size_t i = x.size(); i-- > 1;) {
      std::size_t j = static_cast<std::size_t>(randbelow(i + 1));
      std::swap(x[i], x[j]);
    }
  }

 private:
  uint32_t next32();
  uint64_t getrandbits64(int k);  // 1 <= k <= 64, built from 32-bit words as CPython does
  uint32_t mt_[624];
  int index_ = 624;
};

}  // namespace mm
