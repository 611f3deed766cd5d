// Tests of src/rng.cpp against vectors from PyTorch 1.13.1 and CPython (tests/data/rng/):
// the raw MT19937 stream, uniforms, randint, randn (scalar kernel bit for bit, the AVX2 kernel
// within 1e-5, the small-size double path with its kept spare), multinomial, the interleaving of
// all of them in one generator, and Python's seed / getrandbits / randbelow / shuffle.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "makemore/rng.h"

#ifndef MM_TEST_DATA_DIR
#define MM_TEST_DATA_DIR "tests/data"
#endif

namespace {

constexpr uint64_t kSeed = 2147483647ULL;
constexpr uint64_t kSampleSeed = kSeed + 10;  // the lecture's sampling generator

std::string data_path(const std::string& name) { return std::string(MM_TEST_DATA_DIR) + "/rng/" + name; }

// Non-comment lines of a vector file (the first line of each says how it was made).
std::vector<std::string> read_lines(const std::string& name) {
  std::ifstream in(data_path(name));
  EXPECT_TRUE(in.good()) << "missing " << data_path(name);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line[0] != '#') lines.push_back(line);
  }
  return lines;
}

// The files hold float32 values printed as the shortest double repr, so double -> float is exact.
std::vector<float> read_floats(const std::string& name) {
  std::vector<float> v;
  for (const auto& s : read_lines(name)) v.push_back(static_cast<float>(std::strtod(s.c_str(), nullptr)));
  return v;
}

std::vector<int64_t> read_ints(const std::string& name) {
  std::vector<int64_t> v;
  for (const auto& s : read_lines(name)) v.push_back(std::stoll(s));
  return v;
}

std::vector<uint64_t> read_uints(const std::string& name) {
  std::vector<uint64_t> v;
  for (const auto& s : read_lines(name)) v.push_back(std::stoull(s));
  return v;
}

uint32_t bits(float x) {
  uint32_t b;
  std::memcpy(&b, &x, sizeof b);
  return b;
}

std::vector<float> randn(mm::TorchGenerator& g, std::size_t n) {
  std::vector<float> v(n);
  g.randn(v.data(), n);
  return v;
}

// Bit-exact comparison of got[offset..] against a whole file.
void expect_bits(const std::vector<float>& got, const std::string& file, std::size_t offset = 0) {
  const auto want = read_floats(file);
  ASSERT_GE(got.size(), offset + want.size()) << file;
  int mismatches = 0;
  for (std::size_t i = 0; i < want.size(); ++i) {
    if (bits(got[offset + i]) != bits(want[i]) && ++mismatches <= 5) {
      ADD_FAILURE() << file << "[" << i << "]: got " << got[offset + i] << " want " << want[i];
    }
  }
  EXPECT_EQ(mismatches, 0) << file;
}

void expect_near(const std::vector<float>& got, const std::string& file, std::size_t offset = 0) {
  const auto want = read_floats(file);
  ASSERT_GE(got.size(), offset + want.size()) << file;
  for (std::size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got[offset + i], want[i], 1e-5) << file << "[" << i << "]";
}

// The lecture's parameter draws for the single-layer variants: C, W1, b1, W2, b2.
struct Params {
  std::vector<float> c, w1, b1, w2, b2;
};
Params draw_original(mm::TorchGenerator& g) {
  Params p;
  p.c = randn(g, 27 * 10);
  p.w1 = randn(g, 30 * 200);
  p.b1 = randn(g, 200);
  p.w2 = randn(g, 200 * 27);
  p.b2 = randn(g, 27);
  return p;
}

std::vector<int64_t> randint(mm::TorchGenerator& g, int64_t lo, int64_t hi, std::size_t n) {
  std::vector<int64_t> v(n);
  g.randint(lo, hi, v.data(), n);
  return v;
}

}  // namespace

// --- raw stream and uniforms ---------------------------------------------------------------

TEST(TorchGenerator, Mt19937RawStream) {
  mm::TorchGenerator g(kSeed);
  const auto want = read_uints("common/mt19937_seed2147483647_raw32_first20.txt");
  ASSERT_EQ(want.size(), 20u);
  for (uint64_t w : want) EXPECT_EQ(g.random(), w);
}

TEST(TorchGenerator, SeedUsesLow32Bits) {
  mm::TorchGenerator a(kSeed), b(kSeed | (5ULL << 32));
  for (int i = 0; i < 10; ++i) EXPECT_EQ(a.random(), b.random());
}

TEST(TorchGenerator, FloatUniforms) {
  mm::TorchGenerator g(kSeed);
  std::vector<float> got(20);
  g.rand(got.data(), got.size());
  expect_bits(got, "common/rand_20_fresh.txt");
  g.manual_seed(kSeed);
  const auto want = read_floats("common/rand_20_fresh.txt");
  for (float w : want) EXPECT_EQ(bits(g.uniform_float()), bits(w));
}

TEST(TorchGenerator, DoubleUniformAndRandom64) {
  const auto raw = read_uints("common/mt19937_seed2147483647_raw32_first20.txt");
  mm::TorchGenerator g(kSeed);
  EXPECT_EQ(g.random64(), (raw[0] << 32) | raw[1]);  // first draw is the high half
  const double want = static_cast<double>(((raw[2] << 32) | raw[3]) & ((1ULL << 53) - 1)) * 0x1p-53;
  EXPECT_EQ(g.uniform_double(), want);
}

// --- randint ---------------------------------------------------------------------------------

TEST(TorchGenerator, RandintFresh) {
  mm::TorchGenerator g(kSeed);
  EXPECT_EQ(randint(g, 0, 27, 20), read_ints("common/randint_27_20_fresh.txt"));
}

TEST(TorchGenerator, RandintAfterOriginalParams) {
  mm::TorchGenerator g(kSeed);
  draw_original(g);
  EXPECT_EQ(randint(g, 0, 182625, 32), read_ints("common/randint_original_first32.txt"));
  EXPECT_EQ(randint(g, 0, 182625, 32), read_ints("common/randint_original_second32.txt"));
}

TEST(TorchGenerator, RandintAfterBatchnormParams) {
  mm::TorchGenerator g(kSeed);
  randn(g, 27 * 10);   // C
  randn(g, 30 * 200);  // W1 (no b1 in the BatchNorm variant)
  randn(g, 200 * 27);  // W2
  randn(g, 27);        // b2
  EXPECT_EQ(randint(g, 0, 182625, 32), read_ints("common/randint_batchnorm_first32.txt"));
}

// --- randn, n >= 16: the block Box-Muller path ------------------------------------------------

TEST(TorchGenerator, RandnScalarKernelFresh) {
  for (std::size_t n : {16, 17, 32, 33}) {
    mm::TorchGenerator g(kSeed);
    expect_bits(randn(g, n), "scalar-kernel/randn_" + std::to_string(n) + "_fresh.txt");
  }
}

TEST(TorchGenerator, RandnScalarKernelLectureParams) {
  mm::TorchGenerator g(kSeed);
  const Params p = draw_original(g);
  expect_bits(p.c, "scalar-kernel/randn_27x10_all.txt");
  expect_bits(p.c, "scalar-kernel/randn_27x10_first50.txt");
  expect_bits(p.w1, "scalar-kernel/randn_30x200_first50_after_C.txt");
  expect_bits(p.w1, "scalar-kernel/randn_30x200_last10_after_C.txt", p.w1.size() - 10);
  expect_bits(p.b1, "scalar-kernel/randn_b1_200_original.txt");
  expect_bits(p.w2, "scalar-kernel/randn_W2_200x27_first50_original.txt");
  expect_bits(p.b2, "scalar-kernel/randn_b2_27_original.txt");
}

TEST(TorchGenerator, RandnConsumesTailRedraw) {
  // n % 16 != 0 costs n + 16 draws, n % 16 == 0 exactly n.
  for (std::size_t n : {16, 17, 27, 32, 270}) {
    mm::TorchGenerator g(kSeed), h(kSeed);
    randn(g, n);
    const std::size_t used = n + (n % 16 ? 16 : 0);
    for (std::size_t i = 0; i < used; ++i) h.random();
    EXPECT_EQ(g.random(), h.random()) << n;
  }
}

TEST(TorchGenerator, RandnAvx2KernelWithinTolerance) {
  for (std::size_t n : {16, 17, 32, 33}) {
    mm::TorchGenerator g(kSeed);
    expect_near(randn(g, n), "avx2-kernel/randn_" + std::to_string(n) + "_fresh.txt");
  }
  mm::TorchGenerator g(kSeed);
  const Params p = draw_original(g);
  expect_near(p.c, "avx2-kernel/randn_27x10_all.txt");
  expect_near(p.w1, "avx2-kernel/randn_30x200_first50_after_C.txt");
  expect_near(p.w1, "avx2-kernel/randn_30x200_last10_after_C.txt", p.w1.size() - 10);
  expect_near(p.b1, "avx2-kernel/randn_b1_200_original.txt");
  expect_near(p.w2, "avx2-kernel/randn_W2_200x27_first50_original.txt");
  expect_near(p.b2, "avx2-kernel/randn_b2_27_original.txt");
}

// --- randn, n < 16: the double path with the kept spare ---------------------------------------

TEST(TorchGenerator, RandnSmallFresh) {
  for (std::size_t n : {1, 2, 5, 15}) {
    mm::TorchGenerator g(kSeed);
    expect_bits(randn(g, n), "common/randn_" + std::to_string(n) + "_fresh.txt");
  }
}

TEST(TorchGenerator, RandnSmallKeepsSpareAcrossCalls) {
  mm::TorchGenerator g(kSeed);
  std::vector<float> got = randn(g, 5);
  const auto second = randn(g, 5);
  got.insert(got.end(), second.begin(), second.end());
  expect_bits(got, "common/randn_5_then_5.txt");
}

TEST(TorchGenerator, ManualSeedClearsSpare) {
  mm::TorchGenerator g(kSeed);
  randn(g, 1);  // leaves a spare behind
  g.manual_seed(kSeed);
  expect_bits(randn(g, 1), "common/randn_1_fresh.txt");
}

// --- multinomial -------------------------------------------------------------------------------

// torch.multinomial(p, num_samples=1) with the default replacement=False, as the lecture samples.
// (replacement=True is another algorithm in torch; its *_repl.txt vectors are not used here.)
TEST(TorchGenerator, MultinomialMatchesTorch) {
  for (const std::string row : {"multinomial_probs27", "multinomial_probs27_zeros"}) {
    const auto probs = read_floats(row + ".txt");
    ASSERT_EQ(probs.size(), 27u);
    const auto want = read_ints(row + "_seed2147483657_200.txt");
    ASSERT_EQ(want.size(), 200u);
    mm::TorchGenerator g(kSampleSeed);
    for (std::size_t i = 0; i < want.size(); ++i) {
      const int64_t got = g.multinomial1(probs.data(), probs.size());
      EXPECT_EQ(got, want[i]) << row << " draw " << i;
      EXPECT_GT(probs[static_cast<std::size_t>(got)], 0.0f);  // never a zero-weight category
    }
  }
}

TEST(TorchGenerator, MultinomialUsesTwoDrawsPerCategory) {
  // exponential_ takes a 53-bit double (two 32-bit draws) per element.
  const auto probs = read_floats("multinomial_probs27.txt");
  mm::TorchGenerator g(kSampleSeed), h(kSampleSeed);
  g.multinomial1(probs.data(), probs.size());
  for (int i = 0; i < 2 * 27; ++i) h.random();
  EXPECT_EQ(g.random(), h.random());
}

TEST(TorchGenerator, MultinomialRejectsBadRows) {
  mm::TorchGenerator g(kSampleSeed);
  const float zeros[3] = {0.0f, 0.0f, 0.0f};
  const float negative[3] = {0.5f, -0.1f, 0.6f};
  const float inf[2] = {1.0f, INFINITY};
  EXPECT_THROW(g.multinomial1(zeros, 3), std::invalid_argument);
  EXPECT_THROW(g.multinomial1(negative, 3), std::invalid_argument);
  EXPECT_THROW(g.multinomial1(inf, 2), std::invalid_argument);
  EXPECT_THROW(g.multinomial1(zeros, 0), std::invalid_argument);
}

TEST(TorchGenerator, StreamsInterleave) {
  // randn (both paths, with the spare carried over), multinomial and randint in one generator,
  // in the order the file's header lists.
  const auto probs = read_floats("multinomial_probs27.txt");
  const auto probs_zero = read_floats("multinomial_probs27_zeros.txt");
  std::vector<std::string> got;
  mm::TorchGenerator g(kSampleSeed);
  auto add_randn = [&](std::size_t n) {
    for (float x : randn(g, n)) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "randn %08x", bits(x));
      got.emplace_back(buf);
    }
  };
  auto add_multinomial = [&](const std::vector<float>& p) {
    got.push_back("multinomial " + std::to_string(g.multinomial1(p.data(), p.size())));
  };
  auto add_randint = [&](int64_t hi, std::size_t n) {
    for (int64_t x : randint(g, 0, hi, n)) got.push_back("randint " + std::to_string(x));
  };
  add_randn(5);
  add_multinomial(probs);
  add_randint(27, 3);
  add_randn(3);
  add_multinomial(probs_zero);
  add_randn(20);
  add_multinomial(probs);
  add_randint(182625, 4);
  add_randn(1);
  add_multinomial(probs);

  std::vector<std::string> want;
  for (const auto& line : read_lines("interleaved_seed2147483657.txt")) {
    std::istringstream ss(line);
    std::string op, value;
    ss >> op >> value;
    if (op == "randn") {
      char buf[64];
      std::snprintf(buf, sizeof buf, "randn %08x", bits(static_cast<float>(std::strtod(value.c_str(), nullptr))));
      want.emplace_back(buf);
    } else {
      want.push_back(op + " " + value);
    }
  }
  EXPECT_EQ(got, want);
}

// --- statistical sanity ---------------------------------------------------------------------

TEST(TorchGenerator, RandnMoments) {
  mm::TorchGenerator g(1234);
  const std::size_t n = 100000;
  const auto v = randn(g, n);
  double sum = 0.0, sum_sq = 0.0;
  for (float x : v) {
    sum += x;
    sum_sq += static_cast<double>(x) * x;
  }
  const double mean = sum / n;
  const double std_dev = std::sqrt(sum_sq / n - mean * mean);
  EXPECT_NEAR(mean, 0.0, 0.02);  // standard error ~0.003
  EXPECT_NEAR(std_dev, 1.0, 0.02);
  // the small path too, many calls of 7
  double small_sum = 0.0, small_sq = 0.0;
  for (int i = 0; i < 10000; ++i) {
    for (float x : randn(g, 7)) {
      small_sum += x;
      small_sq += static_cast<double>(x) * x;
    }
  }
  EXPECT_NEAR(small_sum / 70000, 0.0, 0.02);
  EXPECT_NEAR(std::sqrt(small_sq / 70000), 1.0, 0.02);
}

TEST(TorchGenerator, MultinomialFrequencies) {
  const auto probs = read_floats("multinomial_probs27_zeros.txt");
  double total = 0.0;
  for (float p : probs) total += p;
  mm::TorchGenerator g(99);
  const int draws = 100000;
  std::vector<int> counts(probs.size(), 0);
  for (int i = 0; i < draws; ++i) ++counts[static_cast<std::size_t>(g.multinomial1(probs.data(), probs.size()))];
  for (std::size_t i = 0; i < probs.size(); ++i) {
    const double p = probs[i] / total;
    if (p == 0.0) {
      EXPECT_EQ(counts[i], 0) << i;
      continue;
    }
    const double sigma = std::sqrt(draws * p * (1 - p));
    EXPECT_NEAR(counts[i], draws * p, 5 * sigma + 1) << "category " << i;
  }
}

// --- Python's random ----------------------------------------------------------------------------

TEST(PyRandom, Getrandbits32) {
  mm::PyRandom r(42);
  for (uint64_t w : read_uints("common/py_random_seed42_getrandbits32_first10.txt")) EXPECT_EQ(r.getrandbits(32), w);
}

TEST(PyRandom, GetrandbitsShortTakesTopBits) {
  const auto want = read_uints("common/py_random_seed42_getrandbits32_first10.txt");
  mm::PyRandom r(42);
  EXPECT_EQ(r.getrandbits(1), want[0] >> 31);
  EXPECT_EQ(r.getrandbits(17), want[1] >> 15);
}

TEST(PyRandom, RandbelowBeyond32Bits) {
  mm::PyRandom r(42);
  const auto want = read_uints("py_random_seed42_randbelow_big.txt");
  const uint64_t ns[] = {(1ULL << 32) + 15, (1ULL << 40) + 3, (1ULL << 63) + 5, ~0ULL, 1ULL << 33};
  ASSERT_EQ(want.size(), 5u);
  for (std::size_t i = 0; i < 5; ++i) EXPECT_EQ(r.randbelow(ns[i]), want[i]) << i;
}

TEST(PyRandom, ShufflePermutation) {
  // random.seed(42); random.shuffle(list(range(32033))): the permutation the lecture applies to
  // names.txt before its 80/10/10 split.
  const auto want = read_ints("shuffle_perm_seed42_32033.txt");
  ASSERT_EQ(want.size(), 32033u);
  std::vector<int64_t> perm(32033);
  for (std::size_t i = 0; i < perm.size(); ++i) perm[i] = static_cast<int64_t>(i);
  mm::PyRandom r(42);
  r.shuffle(perm);
  EXPECT_EQ(perm, want);
}

TEST(PyRandom, ShuffledWordsFilesAgree) {
  // words_shuffled_first20 is the head of words_shuffled_all.
  const auto all = read_lines("words_shuffled_all.txt");
  const auto first20 = read_lines("common/words_shuffled_first20.txt");
  ASSERT_EQ(all.size(), 32033u);
  ASSERT_EQ(first20.size(), 20u);
  for (std::size_t i = 0; i < 20; ++i) EXPECT_EQ(all[i], first20[i]);
  EXPECT_EQ(first20[0], "yuheng");
}

TEST(PyRandom, ShuffleNamesLikeTheLecture) {
#ifdef MM_SOURCE_DIR
  const std::string names_path = std::string(MM_SOURCE_DIR) + "/data/names.txt";
#else
  const std::string names_path = "data/names.txt";
#endif
  if (!std::filesystem::exists(names_path)) {
    GTEST_SKIP() << names_path << " not found (the setup script copies names.txt there)";
  }
  std::ifstream in(names_path);
  std::vector<std::string> words;
  for (std::string w; std::getline(in, w);) words.push_back(w);
  ASSERT_EQ(words.size(), 32033u);
  mm::PyRandom r(42);
  r.shuffle(words);
  EXPECT_EQ(words, read_lines("words_shuffled_all.txt"));
}

// A resumed training continues the minibatch stream from a saved state: state() / set_state()
// must carry the engine and the spare normal of randn's small-n path across processes (text).
TEST(TorchGenerator, StateRoundTripContinuesTheStream) {
  for (const std::size_t n : {std::size_t{3}, std::size_t{20}}) {  // n < 16 keeps a spare normal
    mm::TorchGenerator g(1234);
    std::vector<float> warm(n);
    g.randn(warm.data(), n);
    const std::string saved = g.state();
    std::vector<float> a(7), b(7);
    std::vector<int64_t> ia(5), ib(5);
    g.randn(a.data(), a.size());
    g.randint(0, 1000, ia.data(), ia.size());
    mm::TorchGenerator h(99);
    ASSERT_TRUE(h.set_state(saved));
    h.randn(b.data(), b.size());
    h.randint(0, 1000, ib.data(), ib.size());
    EXPECT_EQ(a, b) << "n = " << n;
    EXPECT_EQ(ia, ib) << "n = " << n;
  }
  mm::TorchGenerator g(5);
  const std::string before = g.state();
  EXPECT_FALSE(g.set_state("not a generator state"));
  EXPECT_FALSE(g.set_state(before + " trailing"));
  EXPECT_FALSE(g.set_state(before.substr(0, before.size() / 2)));
  EXPECT_EQ(g.state(), before);  // a failed set_state leaves it as it was
}
