// Hostile and unlucky input (issue 16): files that a run folder, a config or a word list can
// hold which must end in a one-line mm::Error naming the file, never a crash, a silent wrong
// result or a huge allocation. The fuzz harnesses in fuzz/ search the same paths at random;
// these tests pin each case that was found by hand or by them.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "makemore/checkpoint.h"
#include "makemore/config.h"
#include "makemore/error.h"
#include "makemore/json_text.h"
#include "makemore/presets.h"
#include "makemore/run.h"
#include "makemore/sample.h"
#include "makemore/stats.h"
#include "test_util.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
using mm_test::read_file;
using mm_test::TempDir;

namespace {

void write_file(const fs::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary);
  out << text;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const mm::Error& e) {
    return e.what();
  }
  return "";
}

mm::Dataset few_words() {
  std::vector<std::u32string> words;
  const char* base[] = {"anna", "bob", "carla", "dmitri", "eve", "fatima", "gus", "hiro", "ines", "jon"};
  for (int i = 0; i < 200; ++i) {
    std::string w = base[i % 10];
    w += static_cast<char>('a' + (i / 10) % 26);
    words.emplace_back(w.begin(), w.end());
  }
  return mm::Dataset::from_words(words, "few words");
}

mm::RunSettings quiet(int64_t diag_every, int64_t save_every) {
  mm::RunSettings s;
  s.diag_every = diag_every;
  s.save_every = save_every;
  s.report = false;
  return s;
}

// A run of `steps` steps stopped after `stop_after` steps: a train state to resume from.
void stopped_run(const fs::path& dir, int64_t steps, int64_t stop_after, const std::string& preset = "lecture-batchnorm") {
  mm::Config cfg = mm::load_preset(preset);
  cfg.steps = steps;
  mm::Run run = mm::Run::create(dir.string(), cfg, few_words(), "test", true, quiet(0, 0));
  std::atomic<bool> stop{false};
  struct StopAt : mm::Observer {
    int64_t at;
    std::atomic<bool>* flag;
    void after_update(mm::Trainer&, int64_t step, double) override {
      if (step == at) flag->store(true);
    }
  } stopper;
  stopper.at = stop_after - 1;
  stopper.flag = &stop;
  mm::TrainHooks hooks;
  hooks.stop = &stop;
  hooks.observers.push_back(&stopper);
  run.train(hooks);
}

// Rewrites a safetensors file with every value of the named tensors (all when empty) set to
// `v`: a file this program could have written (its checksum is valid).
void fill_tensors(const fs::path& file, float v, const std::string& only = "") {
  mm::TensorFile f = mm::load_safetensors(file.string());
  for (auto& t : f.tensors)
    if (only.empty() || t.name == only) std::fill(t.data.begin(), t.data.end(), v);
  mm::save_safetensors(file.string(), f);
}

// The lecture's config as text with `field` (train.X) holding `raw` JSON text verbatim.
std::string config_with(const std::string& field, const std::string& raw) {
  json j = mm::load_preset("lecture-batchnorm").to_json();
  j["train"][field] = "@@";
  std::string text = j.dump();
  text.replace(text.find("\"@@\""), 4, raw);
  return text;
}

}  // namespace

// ---- items 1 and 3: finite files whose numbers overflow --------------------------------------

TEST(Hostile, HistogramOfValuesWithAnInfiniteRangeStaysInItsBins) {
  const float big = std::numeric_limits<float>::max();
  const std::vector<float> x = {-big, big, 0.0f, std::numeric_limits<float>::infinity(), 1.0f};
  for (auto [lo, hi] : {std::pair{0.0, 0.0}, std::pair{-HUGE_VAL, HUGE_VAL}, std::pair{-1e308, 1e308}, std::pair{0.0, 1e-320},
                        std::pair{std::nan(""), 1.0}}) {
    const mm::Histogram h = mm::histogram(x.data(), x.size(), 40, lo, hi);
    ASSERT_EQ(h.counts.size(), 40u);
    int64_t total = 0;
    for (auto c : h.counts) total += c;
    // A range that cannot be binned is replaced by the finite values' own: each finite value is
    // counted once, in its bin (a NaN bin index, cast, can land anywhere: x86 wraps it to bin 0).
    EXPECT_EQ(total, 4) << lo << " " << hi;
    EXPECT_TRUE(std::isfinite(h.lo) && std::isfinite(h.hi)) << h.lo << " " << h.hi;
    EXPECT_EQ(h.counts.front(), 1) << lo << " " << hi;
    EXPECT_EQ(h.counts.back(), 1) << lo << " " << hi;
    EXPECT_EQ(h.counts[20], 2) << lo << " " << hi;
  }
}

// With BatchNorm the overflow turns into NaN by itself (inf - inf); without it a tanh squashes
// the infinite pre-activations to +-1 and the loss looks finite (the issue's 0.0000).
TEST(Hostile, ResumingAStateWhoseForwardOverflowsIsAnErrorNamingTheFileAndStep) {
  for (auto [preset, diag] : {std::pair{"lecture-batchnorm", 0}, std::pair{"lecture-batchnorm", 1},
                              std::pair{"lecture-kaiming", 0}, std::pair{"lecture-kaiming", 1}}) {
    SCOPED_TRACE(std::string(preset) + " diag " + std::to_string(diag));
    TempDir tmp("mm_hostile");
    const fs::path dir = tmp / "run";
    stopped_run(dir, 20, 5, preset);
    fill_tensors(dir / mm::kTrainStateFile, 1e30f);
    std::string err = error_of([&] {
      mm::Run run = mm::Run::resume(dir.string(), -1, quiet(diag, 0));
      const mm::RunResult r = run.train();
      if (!r.divergence.empty()) throw mm::Error(r.divergence);
      FAIL() << "resumed with losses " << r.losses.train << " " << r.losses.val;
    });
    EXPECT_NE(err.find("step 5"), std::string::npos) << err;
    EXPECT_NE(err.find("not finite"), std::string::npos) << err;
    EXPECT_EQ(err.find('\n'), std::string::npos) << err;
  }
}

TEST(Hostile, EvaluatingWeightsWhoseForwardOverflowsIsAnErrorNamingTheFile) {
  TempDir tmp("mm_hostile");
  const fs::path dir = tmp / "run";
  stopped_run(dir, 10, 10);
  fill_tensors(dir / mm::kCheckpointFile, 1e30f);
  const std::string err = error_of([&] {
    mm::Run run = mm::Run::open(dir.string());
    const mm::SplitLosses l = run.evaluate();
    FAIL() << "evaluated to " << l.train << " " << l.val << " " << l.test;
  });
  EXPECT_NE(err.find(mm::kCheckpointFile), std::string::npos) << err;
  EXPECT_NE(err.find("step 10"), std::string::npos) << err;
  EXPECT_NE(err.find("not finite"), std::string::npos) << err;
}
// ---- items 2 and 11: JSON nesting and messages ------------------------------------------------

TEST(Hostile, DeeplyNestedJsonIsRefusedNamingTheFileInOneShortLine) {
  TempDir tmp("mm_hostile");
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  const fs::path cfg = tmp / "deep.json";
  write_file(cfg, config_with("steps", deep));
  const std::string err = error_of([&] { mm::load_config_file(cfg.string()); });
  EXPECT_NE(err.find("deep.json"), std::string::npos) << err.substr(0, 300);
  EXPECT_NE(err.find("train.steps"), std::string::npos) << err.substr(0, 300);
  EXPECT_NE(err.find("nested more than"), std::string::npos) << err.substr(0, 300);
  EXPECT_LT(err.size(), 400u) << err;
  // Within the bound the parse succeeds, and the field's message quotes a short excerpt.
  const std::string ok_deep = std::string(200, '[') + std::string(200, ']');
  write_file(cfg, config_with("steps", ok_deep));
  const std::string err2 = error_of([&] { mm::load_config_file(cfg.string()); });
  EXPECT_NE(err2.find("train.steps: must be an integer"), std::string::npos) << err2;
  EXPECT_LT(err2.size(), 300u) << err2;
  // A jsonl record nested too deep is an unreadable line, not a crash.
  EXPECT_FALSE(mm::parse_json_line(deep).has_value());
  EXPECT_TRUE(mm::parse_json_line(R"({"step": 3})").has_value());
}

TEST(Hostile, ConfigStoredInACheckpointNestedDeeplyIsAnError) {
  TempDir tmp("mm_hostile");
  const fs::path dir = tmp / "run";
  stopped_run(dir, 3, 3);
  mm::TensorFile f = mm::load_safetensors((dir / mm::kCheckpointFile).string());
  f.metadata["config"] = std::string(100000, '[') + std::string(100000, ']');
  mm::save_safetensors((dir / mm::kCheckpointFile).string(), f);
  const std::string err = error_of([&] { mm::Run::open(dir.string()); });
  EXPECT_NE(err.find("config metadata"), std::string::npos) << err.substr(0, 300);
  EXPECT_NE(err.find("nested more than"), std::string::npos) << err.substr(0, 300);
  EXPECT_LT(err.size(), 400u) << err;
}

TEST(Hostile, HugeValuesAreQuotedShortAndNumbersOutOfRangeNamed) {
  TempDir tmp("mm_hostile");
  const fs::path cfg = tmp / "c.json";
  std::string huge(100002, 'x');  // a quoted JSON string of 100000 characters
  huge.front() = huge.back() = '"';
  write_file(cfg, config_with("batch_size", huge));
  std::string err = error_of([&] { mm::load_config_file(cfg.string()); });
  EXPECT_NE(err.find("train.batch_size"), std::string::npos) << err.substr(0, 300);
  EXPECT_LT(err.size(), 300u);
  write_file(cfg, config_with("lr", R"({"values": [0.1, 1e999], "boundaries": [5]})"));
  err = error_of([&] { mm::load_config_file(cfg.string()); });
  EXPECT_NE(err.find("c.json"), std::string::npos) << err;
  EXPECT_NE(err.find("train.lr.values[1]"), std::string::npos) << err;
  EXPECT_NE(err.find("1e999"), std::string::npos) << err;
  write_file(cfg, config_with("steps", "9223372036854775808"));
  err = error_of([&] { mm::load_config_file(cfg.string()); });
  EXPECT_NE(err.find("got 9223372036854775808"), std::string::npos) << err;
  write_file(cfg, R"({"train": {"steps": 1}, "train": {"steps": 2}})");
  err = error_of([&] { mm::load_config_file(cfg.string()); });
  EXPECT_NE(err.find("train"), std::string::npos) << err;
  EXPECT_NE(err.find("appears twice"), std::string::npos) << err;
  // An unknown key of 100 KB is named by an excerpt.
  write_file(cfg, "{\"" + std::string(100000, 'k') + "\": 1}");
  err = error_of([&] { mm::load_config_file(cfg.string()); });
  EXPECT_NE(err.find("unknown field"), std::string::npos) << err.substr(0, 300);
  EXPECT_LT(err.size(), 700u);
}

TEST(Hostile, MessagesFromAStoredVocabularyOrSamplingNameTheFile) {
  TempDir tmp("mm_hostile");
  const fs::path dir = tmp / "run";
  stopped_run(dir, 3, 3);
  const fs::path ck = dir / mm::kCheckpointFile;
  mm::TensorFile f = mm::load_safetensors(ck.string());
  const std::string vocab = f.metadata["vocab"];
  f.metadata["vocab"] = "ba" + vocab.substr(2);
  mm::save_safetensors(ck.string(), f);
  std::string err = error_of([&] { mm::Run::open(dir.string()); });
  EXPECT_NE(err.find(ck.string()), std::string::npos) << err;
  EXPECT_NE(err.find("must be distinct"), std::string::npos) << err;
  EXPECT_NE(err.find("restore the file or train again"), std::string::npos) << err;
  f.metadata["vocab"] = vocab;
  mm::save_safetensors(ck.string(), f);
  fill_tensors(ck, 1e30f);
  err = error_of([&] {
    mm::Run run = mm::Run::open(dir.string());
    run.sample({});
  });
  EXPECT_NE(err.find(ck.string()), std::string::npos) << err;
  EXPECT_NE(err.find("step 3"), std::string::npos) << err;
}

// A temperature so small that the logits divided by it overflow float is the caller's to fix:
// the message names the temperature, not a damaged file (nor the generator's internal check).
TEST(Hostile, ATemperatureTooSmallForTheModelIsBlamedNotTheFile) {
  TempDir tmp("mm_hostile");
  const fs::path dir = tmp / "run";
  stopped_run(dir, 3, 3);
  mm::Run run = mm::Run::open(dir.string());
  mm::SampleOptions opt;
  opt.count = 1;
  opt.temperature = 1e-300;
  const std::string err = error_of([&] { run.sample(opt); });
  EXPECT_NE(err.find("sample: temperature 1e-300 is too small for the model of step 3"), std::string::npos) << err;
  EXPECT_NE(err.find("use a larger one"), std::string::npos) << err;
  EXPECT_EQ(err.find("damaged"), std::string::npos) << err;
  EXPECT_EQ(err.find("multinomial1"), std::string::npos) << err;
  opt.temperature = 0.5;
  EXPECT_EQ(run.sample(opt).size(), 1u);
}

// ---- items 4 and 5: the checksum and the sizes ----------------------------------------------

TEST(Hostile, TheChecksumCoversTheHeaderAndCannotBeSwitchedOff) {
  TempDir tmp("mm_hostile");
  const fs::path dir = tmp / "run";
  stopped_run(dir, 6, 3);
  for (const char* file : {mm::kCheckpointFile, mm::kTrainStateFile}) {
    const fs::path p = dir / file;
    const std::string good = read_file(p);
    // Each edit of the header text that keeps the file well-formed is caught: the step, the
    // generator's state, the checksum key's own name.
    for (auto [from, to] : {std::pair<std::string, std::string>{"\"step\":\"3\"", "\"step\":\"2\""},
                            {"makemore.fnv1a64", "makemore.fnv1a6X"},
                            {"\"optimizer_steps\":\"3\"", "\"optimizer_steps\":\"4\""}}) {
      std::string bad = good;
      const auto at = bad.find(from);
      if (at == std::string::npos) continue;  // the checkpoint has no optimizer_steps
      bad.replace(at, from.size(), to);
      write_file(p, bad);
      const std::string err = error_of([&] {
        if (std::string(file) == mm::kCheckpointFile)
          mm::load_run(dir.string());
        else
          mm::Run::resume(dir.string(), -1, quiet(0, 0));
      });
      EXPECT_NE(err.find("corrupt checkpoint"), std::string::npos) << file << ": " << from << " -> " << to << ": " << err;
    }
    write_file(p, good);
  }
  mm::load_run(dir.string());
}

TEST(Hostile, StepCountsAreParsedWhole) {
  for (const char* bad : {"-1", "0x10", "2000abc", "+5", " 5", "", "99999999999999999999"})
    EXPECT_FALSE(mm::metadata_count(bad, int64_t{1} << 40).has_value()) << bad;
  EXPECT_EQ(mm::metadata_count("2000", int64_t{1} << 40), 2000);
  EXPECT_FALSE(mm::metadata_count("2000", 1999).has_value());
}

TEST(Hostile, AConfigAskingForHugeLayersFailsBeforeAllocating) {
  TempDir tmp("mm_hostile");
  const fs::path dir = tmp / "run";
  stopped_run(dir, 3, 3);
  const fs::path ck = dir / mm::kCheckpointFile;
  mm::TensorFile f = mm::load_safetensors(ck.string());
  json cfg = json::parse(f.metadata["config"]);
  // 196,608 x 1,048,576 floats for the first layer alone (800 GB), in a file of a few KB.
  cfg["model"]["n_embd"] = 1 << 16;
  cfg["model"]["layers"][0]["out"] = 1 << 20;
  f.metadata["config"] = cfg.dump();
  mm::save_safetensors(ck.string(), f);
  const auto t0 = std::chrono::steady_clock::now();
  const std::string err = error_of([&] { mm::Run::open(dir.string()); });
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_NE(err.find("its config needs"), std::string::npos) << err;
  EXPECT_LT(ms, 2000) << "the model was built before the sizes were checked";
}

// ---- item 6: word lists ------------------------------------------------------------------------

TEST(Hostile, WordListsAreRegularFilesOfBoundedSize) {
  std::string err = error_of([] { mm::load_words("/dev/zero"); });
  EXPECT_NE(err.find("/dev/zero: is not a regular file"), std::string::npos) << err;
  TempDir tmp("mm_hostile");
  const fs::path big = tmp / "big.txt";
  write_file(big, "anna\n");
  fs::resize_file(big, mm::kMaxWordListBytes + 1);  // sparse: zeros past the first line
  err = error_of([&] { mm::load_words(big.string()); });
  EXPECT_NE(err.find("larger than the word list limit of 64 MiB"), std::string::npos) << err;
  // Standard input ("-") is read with the same cap: an endless stream ends in the same error.
  const int saved = dup(STDIN_FILENO), zero = open("/dev/zero", O_RDONLY);
  ASSERT_GE(zero, 0);
  dup2(zero, STDIN_FILENO);
  close(zero);
  err = error_of([] { mm::load_words("-"); });
  dup2(saved, STDIN_FILENO);
  close(saved);
  std::clearerr(stdin);
  EXPECT_NE(err.find("-: larger than the word list limit of 64 MiB"), std::string::npos) << err;
}
