// End-to-end tests of the `makemore` command: each test runs the real binary (MM_BINARY) in
// its own temporary folder, capturing stdout, stderr and the exit status separately. Covers
// train -> eval -> sample, every preset, `presets show` round trips, non-ASCII word lists,
// bench, signals and exit codes, and the promise that every bad input ends in exactly one
// "makemore: error: " line, a non-zero exit, no crash, and no result.json claiming success. The
// run folder's rules (resume, refusal, divergence, the lock, saves a kill interrupts) are tested
// in-process in test_run.cpp. Kept to a few training steps per run.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "makemore/checkpoint.h"
#include "makemore/data.h"
#include "makemore/page.h"
#include "makemore/presets.h"
#include "makemore/version.h"
#include "test_util.h"

namespace {

using mm_test::read_file;
using mm_test::TempDir;

namespace fs = std::filesystem;
using nlohmann::json;

const std::vector<std::string> k_presets = {
    "lecture-original", "lecture-fix-softmax",     "lecture-fix-tanh", "lecture-kaiming", "lecture-batchnorm",
    "lecture-deep",     "deep-residual-layernorm", "big-mlp",          "wavenet"};

struct CliResult {
  int exit_code = -1;  // valid when !signaled
  bool signaled = false;
  int signal = 0;
  std::string out, err;
};

void write_file(const fs::path& p, const std::string& text) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f << text;
}

std::vector<std::string> split_lines(const std::string& s) {
  std::vector<std::string> lines;
  std::istringstream in(s);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

fs::path cli_stdout(const fs::path& cwd) { return cwd / ".cli_stdout"; }
fs::path cli_stderr(const fs::path& cwd) { return cwd / ".cli_stderr"; }

// Starts MM_BINARY with args in cwd, stdin from /dev/null, stdout and stderr into files there.
pid_t spawn_cli(const fs::path& cwd, const std::vector<std::string>& args) {
  const fs::path out_path = cli_stdout(cwd), err_path = cli_stderr(cwd);
  const pid_t pid = fork();
  if (pid == 0) {
    const int out_fd = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int err_fd = open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int null_fd = open("/dev/null", O_RDONLY);
    if (out_fd < 0 || err_fd < 0 || null_fd < 0 || chdir(cwd.c_str()) != 0) _exit(127);
    dup2(null_fd, STDIN_FILENO);
    dup2(out_fd, STDOUT_FILENO);
    dup2(err_fd, STDERR_FILENO);
    std::vector<char*> argv;
    std::string bin = MM_BINARY;
    argv.push_back(bin.data());
    std::vector<std::string> copy = args;
    for (auto& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(bin.c_str(), argv.data());
    const std::string msg = "test_cli: cannot run " + bin + ": " + std::strerror(errno) + "\n";
    if (write(STDERR_FILENO, msg.data(), msg.size()) < 0) _exit(126);
    _exit(127);
  }
  return pid;
}

// The finished command's exit status (from waitpid) and its output files, which are removed.
CliResult collect_cli(const fs::path& cwd, int status) {
  CliResult r;
  if (WIFSIGNALED(status)) {
    r.signaled = true;
    r.signal = WTERMSIG(status);
  } else {
    r.exit_code = WEXITSTATUS(status);
  }
  r.out = read_file(cli_stdout(cwd));
  r.err = read_file(cli_stderr(cwd));
  fs::remove(cli_stdout(cwd));
  fs::remove(cli_stderr(cwd));
  return r;
}

// Runs MM_BINARY with args in cwd; stdout and stderr go to files there, read back afterwards.
CliResult run_cli(const fs::path& cwd, const std::vector<std::string>& args) {
  const pid_t pid = spawn_cli(cwd, args);
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) != pid) {
    CliResult r;
    r.err = "fork/waitpid failed";
    return r;
  }
  return collect_cli(cwd, status);
}

std::string describe(const CliResult& r) {
  return "exit " + std::to_string(r.exit_code) + (r.signaled ? " signal " + std::to_string(r.signal) : "") + "\n--- stdout:\n" +
         r.out + "\n--- stderr:\n" + r.err;
}

// The last stdout line as JSON (null when it does not parse).
json last_json_line(const CliResult& r) {
  const auto lines = split_lines(r.out);
  if (lines.empty()) return nullptr;
  return json::parse(lines.back(), nullptr, false);
}

// A failure the command handled: exit != 0 (no signal), stderr exactly one
// "makemore: error: ..." line containing each of parts.
void expect_one_line_error(const CliResult& r, const std::vector<std::string>& parts) {
  SCOPED_TRACE(describe(r));
  EXPECT_FALSE(r.signaled) << "crashed with signal " << r.signal;
  EXPECT_NE(r.exit_code, 0);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "stderr must be exactly one line";
  ASSERT_FALSE(r.err.empty());
  EXPECT_EQ(r.err.back(), '\n');
  EXPECT_EQ(r.err.rfind("makemore: error: ", 0), 0u);
  for (const auto& p : parts) EXPECT_NE(r.err.find(p), std::string::npos) << "missing '" << p << "'";
}

// 300 made-up lowercase names from a fixed LCG: the same file on every run.
std::vector<std::string> made_up_names(int n) {
  static const char* syllables[] = {"ka", "lo", "mi", "ra", "en", "is",  "ta", "no", "bel", "dor", "fi", "ja",
                                    "qu", "ve", "xi", "zo", "wy", "han", "ce", "gu", "py",  "so",  "ul", "th"};
  constexpr uint64_t k_count = sizeof(syllables) / sizeof(syllables[0]);
  uint64_t state = 12345;
  auto next = [&state](uint64_t bound) {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (state >> 33) % bound;
  };
  std::vector<std::string> names;
  for (int i = 0; i < n; ++i) {
    std::string w;
    const uint64_t parts = 1 + next(3);
    for (uint64_t k = 0; k < parts; ++k) w += syllables[next(k_count)];
    names.push_back(w);
  }
  return names;
}

// Writes the names to dir/words.in.txt; returns the file name and the expected example count.
std::string write_names(const TempDir& dir, std::size_t* examples = nullptr, std::set<char32_t>* chars = nullptr) {
  const auto names = made_up_names(300);
  std::string text;
  std::size_t n = 0;
  for (const auto& w : names) {
    text += w + "\n";
    n += w.size() + 1;
    if (chars)
      for (char c : w) chars->insert(static_cast<char32_t>(c));
  }
  write_file(dir / "names.in.txt", text);
  if (examples) *examples = n;
  return "names.in.txt";
}

// `presets show NAME` parsed, for building configs to edit.
json preset_json(const TempDir& dir, const std::string& name) {
  const CliResult r = run_cli(dir.path(), {"presets", "show", name});
  EXPECT_EQ(r.exit_code, 0) << describe(r);
  return json::parse(r.out, nullptr, false);
}

// Every sample decodes as UTF-8 and uses only characters from chars.
void expect_samples_in_vocab(const json& samples, const std::set<char32_t>& chars) {
  for (const auto& s : samples) {
    const std::string text = s.at("text").get<std::string>();
    std::u32string cps;
    ASSERT_TRUE(mm::from_utf8(text, &cps)) << "invalid UTF-8: " << text;
    for (char32_t c : cps) EXPECT_TRUE(chars.count(c)) << "sample '" << text << "' has U+" << std::hex << uint32_t(c);
  }
}

// --- the happy path ------------------------------------------------------------------------

TEST(CliEndToEnd, TrainEvalSample) {
  TempDir dir;
  std::size_t n_examples = 0;
  std::set<char32_t> chars;
  const std::string words = write_names(dir, &n_examples, &chars);

  const CliResult tr = run_cli(dir.path(), {"train", "-i", words, "-o", "run", "--steps", "300", "--json"});
  ASSERT_EQ(tr.exit_code, 0) << describe(tr);
  EXPECT_EQ(split_lines(tr.out).size(), 1u) << "with --json, stdout carries only the JSON";
  const json res = last_json_line(tr);
  ASSERT_TRUE(res.is_object()) << tr.out;
  for (const char* key : {"initial_loss", "train_loss", "val_loss", "test_loss", "steps", "seconds", "steps_per_sec", "examples"})
    EXPECT_TRUE(res.contains(key)) << key;
  EXPECT_EQ(res["steps"].get<int64_t>(), 300);
  EXPECT_GT(res["seconds"].get<double>(), 0.0);
  EXPECT_GT(res["steps_per_sec"].get<double>(), 0.0);
  EXPECT_LT(res["train_loss"].get<double>(), res["initial_loss"].get<double>());
  const json& ex = res["examples"];
  EXPECT_EQ(ex["train"].get<std::size_t>() + ex["val"].get<std::size_t>() + ex["test"].get<std::size_t>(), n_examples);

  const fs::path run = dir / "run";
  for (const char* f : {"config.json", "model.safetensors", "metrics.jsonl", "result.json", "words.txt"})
    EXPECT_TRUE(fs::is_regular_file(run / f)) << f;
  EXPECT_EQ(json::parse(read_file(run / "result.json"))["test_loss"], res["test_loss"]);
  // A record per step, and the validation curve's (--eval-every's default 20000: step 0 and the
  // last, which is the final model's val_loss).
  const auto metrics = split_lines(read_file(run / "metrics.jsonl"));
  std::size_t steps = 0;
  std::vector<std::pair<std::size_t, double>> val;
  for (const auto& line : metrics) {
    const json m = json::parse(line, nullptr, false);
    ASSERT_TRUE(m.is_object()) << line;
    if (m.contains("val_loss")) {
      val.emplace_back(m.at("step").get<std::size_t>(), m.at("val_loss").get<double>());
      continue;
    }
    EXPECT_EQ(m.at("step").get<std::size_t>(), steps++);
    EXPECT_TRUE(m.at("loss").is_number()) << line;
  }
  EXPECT_EQ(steps, 300u);
  ASSERT_EQ(val.size(), 2u);
  EXPECT_EQ(val[0].first, 0u);
  EXPECT_EQ(val[1].first, 300u);
  EXPECT_EQ(val[1].second, res["val_loss"].get<double>());

  const CliResult ev = run_cli(dir.path(), {"eval", "-o", "run", "--json"});
  ASSERT_EQ(ev.exit_code, 0) << describe(ev);
  const json e = last_json_line(ev);
  ASSERT_TRUE(e.is_object()) << ev.out;
  for (const char* key : {"train_loss", "val_loss", "test_loss"})
    EXPECT_NEAR(e[key].get<double>(), res[key].get<double>(), 1e-5) << key;
  EXPECT_EQ(e["examples"], res["examples"]);

  auto sample = [&](std::vector<std::string> extra) {
    std::vector<std::string> args{"sample", "-o", "run", "-n", "10", "--json"};
    args.insert(args.end(), extra.begin(), extra.end());
    const CliResult r = run_cli(dir.path(), args);
    EXPECT_EQ(r.exit_code, 0) << describe(r);
    return last_json_line(r);
  };
  const json s = sample({});
  ASSERT_TRUE(s.is_object());
  ASSERT_EQ(s["samples"].size(), 10u);
  expect_samples_in_vocab(s["samples"], chars);
  int fresh = 0;
  for (const auto& item : s["samples"]) fresh += item.at("new").get<bool>();
  EXPECT_EQ(s.at("new").get<int>(), fresh);

  const json a1 = sample({"--seed", "7"}), a2 = sample({"--seed", "7"}), b = sample({"--seed", "8"});
  EXPECT_EQ(a1["samples"], a2["samples"]) << "same seed, same samples";
  EXPECT_NE(a1["samples"], b["samples"]) << "another seed, other samples";
}

TEST(CliPresets, EveryPresetTrains) {
  TempDir dir;
  const std::string words = write_names(dir);
  for (const auto& p : k_presets) {
    SCOPED_TRACE(p);
    const CliResult r = run_cli(dir.path(), {"train", "-i", words, "-o", "run_" + p, "--preset", p, "--steps", "20", "--json"});
    ASSERT_EQ(r.exit_code, 0) << describe(r);
    const json res = last_json_line(r);
    ASSERT_TRUE(res.is_object()) << r.out;
    EXPECT_EQ(res["preset"], p);
    EXPECT_EQ(res["steps"].get<int64_t>(), 20);
    EXPECT_TRUE(fs::is_regular_file(dir / ("run_" + p) / "result.json"));
  }
}

TEST(CliPresets, ListsAllSix) {
  TempDir dir;
  const CliResult r = run_cli(dir.path(), {"presets"});
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  for (const auto& p : k_presets) EXPECT_NE(r.out.find(p), std::string::npos) << p;
}

TEST(CliPresets, ShowOutputTrainsAsConfig) {
  TempDir dir;
  const std::string words = write_names(dir);
  const CliResult show = run_cli(dir.path(), {"presets", "show", "lecture-deep"});
  ASSERT_EQ(show.exit_code, 0) << describe(show);
  const json cfg = json::parse(show.out, nullptr, false);
  ASSERT_TRUE(cfg.is_object()) << show.out;
  EXPECT_EQ(cfg["name"], "lecture-deep");
  write_file(dir / "deep.json", show.out);
  const CliResult r =
      run_cli(dir.path(), {"train", "-i", words, "-o", "run", "--config", "deep.json", "--steps", "20", "--json"});
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  const json res = last_json_line(r);
  ASSERT_TRUE(res.is_object()) << r.out;
  EXPECT_EQ(res["preset"], "lecture-deep");
  EXPECT_EQ(res["steps"].get<int64_t>(), 20);
}

TEST(CliUnicode, TrainsAndSamplesVocabularyCharacters) {
  TempDir dir;
  const std::string text = read_file(fs::path(MM_TEST_DATA_DIR) / "unicode_words.txt");
  std::u32string decoded;
  ASSERT_TRUE(mm::from_utf8(text, &decoded));
  std::set<char32_t> chars;
  for (char32_t c : decoded)
    if (c != U'\n' && c != U'\r') chars.insert(c);
  write_file(dir / "unicode.txt", text);

  const CliResult tr = run_cli(dir.path(), {"train", "-i", "unicode.txt", "-o", "run", "--steps", "100", "--json"});
  ASSERT_EQ(tr.exit_code, 0) << describe(tr);
  const json res = last_json_line(tr);
  ASSERT_TRUE(res.is_object()) << tr.out;
  EXPECT_EQ(res["vocab_size"].get<std::size_t>(), chars.size() + 1);

  const CliResult s = run_cli(dir.path(), {"sample", "-o", "run", "-n", "40", "--json"});
  ASSERT_EQ(s.exit_code, 0) << describe(s);
  const json j = last_json_line(s);
  ASSERT_TRUE(j.is_object()) << s.out;
  ASSERT_EQ(j["samples"].size(), 40u);
  expect_samples_in_vocab(j["samples"], chars);

  const CliResult plain = run_cli(dir.path(), {"sample", "-o", "run", "-n", "40"});
  ASSERT_EQ(plain.exit_code, 0) << describe(plain);
  EXPECT_TRUE(mm::from_utf8(plain.out, &decoded)) << "plain output is valid UTF-8";
}

TEST(CliBench, JsonReportsSpeed) {
  TempDir dir;
  const std::string words = write_names(dir);
  const CliResult r =
      run_cli(dir.path(), {"bench", "-i", words, "--steps", "200", "--repeat", "1", "--json", "--preset", "lecture-batchnorm"});
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  const json j = last_json_line(r);
  ASSERT_TRUE(j.is_object()) << r.out;
  ASSERT_EQ(j["results"].size(), 1u);
  EXPECT_EQ(j["results"][0]["preset"], "lecture-batchnorm");
  EXPECT_GT(j["results"][0]["steps_per_sec"].get<double>(), 0.0);
  EXPECT_GT(j["results"][0]["eval_train_split_ms"].get<double>(), 0.0);
  // The machine is named, so that numbers from two machines are not compared by mistake.
  ASSERT_TRUE(j["cpu"].is_string());
  EXPECT_FALSE(j["cpu"].get<std::string>().empty());
  EXPECT_NE(r.err.find(j["cpu"].get<std::string>()), std::string::npos) << "the header (stderr with --json) names it too";
}

// --profile: every part of the step named once, the parts adding up to the total, the products'
// own GFLOP/s; --threads 2 is accepted and reported. train --json reports memory and eval time.
TEST(CliBench, ProfileThreadsAndTrainResources) {
  TempDir dir;
  const std::string words = write_names(dir);
  const CliResult r = run_cli(dir.path(), {"bench", "-i", words, "--steps", "100", "--repeat", "1", "--json", "--profile",
                                           "--threads", "2", "--preset", "lecture-batchnorm"});
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  const json j = last_json_line(r);
  ASSERT_TRUE(j.is_object()) << r.out;
  EXPECT_EQ(j["threads"], 2);
  const json& prof = j["results"][0]["profile"];
  ASSERT_TRUE(prof.is_object()) << j.dump();
  // gather, embedding, 4 layers forward, loss forward, the finiteness check, loss backward,
  // 4 layers backward, embedding backward, the update
  ASSERT_EQ(prof["parts"].size(), 15u) << prof.dump();
  double sum = 0;
  for (const auto& part : prof["parts"]) {
    EXPECT_GE(part["ns_per_step"].get<double>(), 0.0) << part.dump();
    sum += part["ns_per_step"].get<double>();
  }
  EXPECT_NEAR(sum, prof["total_ns_per_step"].get<double>(), 1e-6 * sum);
  EXPECT_GT(prof["by_kind"]["matmul"].get<double>(), 0.0);
  EXPECT_GT(prof["matmul_gflops"].get<double>(), 0.0);
  EXPECT_EQ(prof["parts"][2]["kind"], "matmul");
  EXPECT_EQ(prof["parts"][3]["kind"], "normalization");

  const CliResult t = run_cli(dir.path(), {"train", "-i", words, "-o", "run", "--steps", "50", "--json", "--threads", "2", "-q"});
  ASSERT_EQ(t.exit_code, 0) << describe(t);
  const json res = last_json_line(t);
  EXPECT_EQ(res["threads"], 2);
  EXPECT_GT(res["peak_memory_mb"].get<double>(), 1.0);
  EXPECT_LT(res["peak_memory_mb"].get<double>(), 1024.0);
  EXPECT_GE(res["eval_seconds"].get<double>(), 0.0);
}

// --profile looks inside blocks: each residual block's row is a group whose time is its rows
// one level deeper (its layers and its own sum), every nested layer has a forward and a backward
// row named like its parameters, and the products alone are measured with the Linears inside.
TEST(CliBench, ProfileLooksInsideResidualBlocks) {
  TempDir dir;
  const std::string words = write_names(dir);
  const CliResult r = run_cli(dir.path(), {"bench", "-i", words, "--steps", "50", "--repeat", "1", "--json", "--profile",
                                           "--preset", "deep-residual-layernorm"});
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  const json prof = last_json_line(r)["results"][0]["profile"];
  ASSERT_TRUE(prof.is_object()) << r.out;
  const json& parts = prof["parts"];
  double leaves = 0;
  int groups = 0, nested_linear_rows = 0;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    const json& p = parts[i];
    if (!p["group"].get<bool>()) leaves += p["ns_per_step"].get<double>();
    if (p["depth"] == 1 && p["kind"] == "matmul") {
      ++nested_linear_rows;
      EXPECT_NE(p["part"].get<std::string>().find(".layers.1 Linear(100, 100"), std::string::npos) << p.dump();
    }
    if (!p["group"].get<bool>()) continue;
    ++groups;
    EXPECT_EQ(p["depth"], 0) << p.dump();
    EXPECT_EQ(p["kind"], "block") << p.dump();
    double inside = 0;
    std::size_t k = i + 1;
    for (; k < parts.size() && parts[k]["depth"].get<int>() > p["depth"].get<int>(); ++k) {
      EXPECT_EQ(parts[k]["depth"], 1) << parts[k].dump();
      inside += parts[k]["ns_per_step"].get<double>();
    }
    EXPECT_EQ(k - i - 1, 4u) << "LayerNorm, Linear, Tanh and the block's own part below " << p.dump();
    EXPECT_NEAR(inside, p["ns_per_step"].get<double>(), 1e-6 * inside + 1e-9) << p.dump();
  }
  EXPECT_EQ(groups, 2 * 9) << "nine residual blocks, forward and backward";
  EXPECT_EQ(nested_linear_rows, 2 * 9);
  EXPECT_NEAR(leaves, prof["total_ns_per_step"].get<double>(), 1e-6 * leaves);
  EXPECT_GT(prof["matmul_gflops"].get<double>(), 0.0) << prof.dump();
}

// --config times any network; --torch runs its PyTorch twin (bench/torch/config.py) when this
// machine has PyTorch; --seconds bounds each run by time and never exceeds --steps.
const char* k_tiny_residual = R"({"name": "tiny-net", "data": {"block_size": 4},
  "model": {"n_embd": 6, "layers": [
    {"type": "linear", "out": 16}, {"type": "tanh"},
    {"type": "residual", "layers": [{"type": "layernorm"}, {"type": "linear", "out": 16, "bias": false}, {"type": "tanh"}]},
    {"type": "linear", "out": "vocab"}]},
  "train": {"optimizer": "adam", "lr": 0.01}})";

bool have_torch() { return std::system("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1") == 0; }

TEST(CliBench, ConfigFileAnyNetwork) {
  TempDir dir;
  const std::string words = write_names(dir);
  write_file(dir / "tiny.json", k_tiny_residual);
  const CliResult r = run_cli(dir.path(), {"bench", "-i", words, "--config", "tiny.json", "--steps", "40", "--repeat", "1",
                                           "--seconds", "0.05", "--json"});
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  const json j = last_json_line(r);
  ASSERT_TRUE(j.is_object()) << r.out;
  ASSERT_EQ(j["results"].size(), 1u) << "--config alone: no default presets";
  const json& row = j["results"][0];
  EXPECT_EQ(row["preset"], "tiny-net");
  EXPECT_EQ(row["config"], "tiny.json");
  EXPECT_GT(row["steps_per_sec"].get<double>(), 0.0);
  EXPECT_GE(row["steps"].get<int64_t>(), 1);
  EXPECT_LE(row["steps"].get<int64_t>(), 40);
  EXPECT_GT(row["matmul_flops_per_step"].get<double>(), 0.0);

  const CliResult plain = run_cli(dir.path(), {"bench", "-i", words, "--config", "tiny.json", "--preset", "lecture-kaiming",
                                               "--steps", "20", "--repeat", "1"});
  ASSERT_EQ(plain.exit_code, 0) << describe(plain);
  const auto k = plain.out.find("\nlecture-kaiming "), t = plain.out.find("\ntiny-net ");
  EXPECT_TRUE(k != std::string::npos && t != std::string::npos && k < t) << "presets first, then files:\n" << plain.out;

  if (!have_torch()) GTEST_SKIP() << "PyTorch is not installed: the twin is not run";
  const CliResult tr = run_cli(dir.path(), {"bench", "-i", words, "--config", "tiny.json", "--steps", "20", "--repeat", "1",
                                            "--torch", "--torch-steps", "20", "--json"});
  ASSERT_EQ(tr.exit_code, 0) << describe(tr);
  const json tj = last_json_line(tr);
  ASSERT_TRUE(tj.is_object()) << tr.out;
  EXPECT_EQ(tj["torch"], true);
  const json& trow = tj["results"][0];
  ASSERT_TRUE(trow["torch_steps_per_sec"].is_number()) << trow.dump();
  EXPECT_GT(trow["torch_steps_per_sec"].get<double>(), 0.0);
  EXPECT_NEAR(trow["speedup_vs_torch"].get<double>(),
              trow["steps_per_sec"].get<double>() / trow["torch_steps_per_sec"].get<double>(), 1e-9);
}

// --- bad inputs: one line on stderr, non-zero exit, no result.json ---------------------------

TEST(CliBadInput, WordFiles) {
  TempDir dir;
  fs::create_directory(dir / "a_directory");
  write_file(dir / "empty.txt", "");
  write_file(dir / "binary.txt", std::string("anna\nbo\0b\nemma\n", 15));
  write_file(dir / "bad_utf8.txt",
             "anna\nbob\nem\xff"
             "ma\n");
  write_file(dir / "three.txt", "anna\nbob\nemma\n");
  struct Case {
    std::string file;
    std::vector<std::string> parts;
  };
  const std::vector<Case> cases = {
      {"missing.txt", {"missing.txt", "no such file"}},
      {"a_directory", {"a_directory", "directory"}},
      {"empty.txt", {"empty.txt", "empty"}},
      {"binary.txt", {"binary.txt", "binary"}},
      {"bad_utf8.txt", {"bad_utf8.txt:3", "invalid UTF-8"}},
      {"three.txt", {"three.txt", "too few items (3)", "split empty", "at least 10"}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.file);
    const CliResult r = run_cli(dir.path(), {"train", "-i", c.file, "-o", "run", "--steps", "5"});
    expect_one_line_error(r, c.parts);
    EXPECT_TRUE(r.out.empty()) << r.out;
    EXPECT_FALSE(fs::exists(dir / "run" / "result.json"));
  }
}

// A warmup longer than the run trains at a fraction of the rate the config names: said, not silent.
TEST(CliBadInput, WarmupLongerThanTheRunIsNoted) {
  TempDir dir;
  const std::string words = write_names(dir);
  json cfg = preset_json(dir, "lecture-kaiming");
  cfg["train"]["lr"]["warmup"] = 1000000;
  write_file(dir / "warm.json", cfg.dump(2));
  const CliResult r =
      run_cli(dir.path(), {"train", "-i", words, "-o", "run", "--config", "warm.json", "--steps", "5", "-q", "--no-report"});
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_NE(r.err.find("note: train.lr.warmup is 1000000 steps, longer than the run's 5: the learning rate only reaches 5e-06"),
            std::string::npos)
      << r.err;
}

TEST(CliBadInput, ConfigFiles) {
  TempDir dir;
  const std::string words = write_names(dir);
  const json base = preset_json(dir, "lecture-original");
  ASSERT_TRUE(base.is_object());
  json steps = base, unknown = base, layer = base, flatten = base;
  steps["train"]["steps"] = -5;
  unknown["train"]["bogus"] = 1;
  layer["model"]["layers"][1]["type"] = "tahn";
  flatten["model"]["layers"].insert(flatten["model"]["layers"].begin(), json{{"type", "flatten"}, {"n", 2}});
  write_file(dir / "steps.json", steps.dump(2));
  write_file(dir / "unknown.json", unknown.dump(2));
  write_file(dir / "layer.json", layer.dump(2));
  write_file(dir / "flatten.json", flatten.dump(2));
  // A residual branch ending at the vocabulary: only the built model knows it maps 200 to 27.
  json residual = base;
  residual["model"]["layers"].insert(residual["model"]["layers"].begin() + 2,
                                     json{{"type", "residual"}, {"layers", {{{"type", "linear"}, {"out", "vocab"}}}}});
  write_file(dir / "residual.json", residual.dump(2));
  write_file(dir / "invalid.json", "{\"train\": {\"steps\": 5,}");
  write_file(dir / "empty.json", "");
  // The same key twice in one object (JSON parsers keep the last silently).
  std::string twice = base.dump(2);
  twice.replace(twice.find("\"steps\""), 0, "\"steps\": 7,\n    ");
  write_file(dir / "twice.json", twice);
  struct Case {
    std::string file, part1, part2;
  };
  const std::vector<Case> cases = {
      {"steps.json", "train.steps", "-5"},
      {"unknown.json", "train.bogus", "unknown field"},
      {"layer.json", "model.layers[1].type", "tahn"},
      {"flatten.json", "model.layers", "divisible"},
      {"residual.json", "model.layers[2].layers: residual branch maps", "to 27; its output width must equal its input"},
      {"invalid.json", "invalid JSON", "invalid.json:1:"},
      {"empty.json", "empty", "empty.json"},
      {"twice.json", "twice.json", "train.steps: the key appears twice"},
      {"missing.json", "no such config file", "missing.json"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.file);
    const CliResult r = run_cli(dir.path(), {"train", "-i", words, "-o", "run", "--config", c.file, "--steps", "5"});
    expect_one_line_error(r, {c.file, c.part1, c.part2});
    EXPECT_FALSE(fs::exists(dir / "run" / "result.json"));
    EXPECT_FALSE(fs::exists(dir / "run" / "model.safetensors"));
  }
}

TEST(CliBadInput, UnknownPreset) {
  TempDir dir;
  const std::string words = write_names(dir);
  const CliResult r = run_cli(dir.path(), {"train", "-i", words, "-o", "run", "--preset", "nope"});
  expect_one_line_error(r, {"unknown preset 'nope'", "lecture-batchnorm"});
  EXPECT_FALSE(fs::exists(dir / "run"));

  const CliResult b = run_cli(dir.path(), {"bench", "-i", words, "--preset", "nope", "--steps", "5", "--repeat", "1"});
  expect_one_line_error(b, {"unknown preset 'nope'"});
  EXPECT_TRUE(b.out.empty()) << b.out;
}

TEST(CliBadInput, BenchConfig) {
  TempDir dir;
  const std::string words = write_names(dir);
  write_file(dir / "bad.json",
             R"({"model": {"n_embd": 10, "layers": [{"type": "linear", "out": "vocab"}]}, "train": {"steps": -4}})");
  const CliResult b = run_cli(dir.path(), {"bench", "-i", words, "--config", "bad.json", "--steps", "5", "--repeat", "1"});
  expect_one_line_error(b, {"bad.json", "train.steps"});
  EXPECT_TRUE(b.out.empty()) << "nothing timed before every file is checked:\n" << b.out;

  const CliResult m = run_cli(dir.path(), {"bench", "-i", words, "--preset", "lecture-kaiming", "--config", "missing.json"});
  expect_one_line_error(m, {"missing.json", "no such config file"});
  EXPECT_TRUE(m.out.empty()) << m.out;
}

TEST(CliBadInput, PresetAndConfigTogether) {
  TempDir dir;
  const std::string words = write_names(dir);
  write_file(dir / "deep.json", preset_json(dir, "lecture-deep").dump());
  const CliResult r =
      run_cli(dir.path(), {"train", "-i", words, "-o", "run", "--preset", "lecture-deep", "--config", "deep.json"});
  EXPECT_FALSE(r.signaled) << describe(r);
  EXPECT_NE(r.exit_code, 0) << describe(r);
  EXPECT_NE(r.err.find("excludes"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir / "run"));
}

TEST(CliBadRun, MissingFolder) {
  TempDir dir;
  for (const char* cmd : {"eval", "sample"}) {
    SCOPED_TRACE(cmd);
    expect_one_line_error(run_cli(dir.path(), {cmd, "-o", "no_such_run"}), {"no_such_run", "no such run folder"});
  }
}

// A good run, then its checkpoint cut to half, replaced by garbage, emptied, or its words.txt
// deleted: eval and sample must each refuse with one line naming the file.
TEST(CliBadRun, DamagedRunFolder) {
  TempDir dir;
  const std::string words = write_names(dir);
  const CliResult tr = run_cli(dir.path(), {"train", "-i", words, "-o", "good", "--steps", "20", "--json"});
  ASSERT_EQ(tr.exit_code, 0) << describe(tr);
  const std::string ckpt = read_file(dir / "good" / "model.safetensors");
  ASSERT_GT(ckpt.size(), 100u);

  std::string garbage(4096, '\0');
  uint64_t x = 99;
  for (auto& ch : garbage) {
    x = x * 6364136223846793005ULL + 1;
    ch = static_cast<char>(x >> 56);
  }
  struct Case {
    std::string name, content;
  };
  const std::vector<Case> cases = {
      {"half", ckpt.substr(0, ckpt.size() / 2)},
      {"header_only", ckpt.substr(0, 8)},
      {"garbage", garbage},
      {"empty", ""},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    fs::copy(dir / "good", dir / c.name, fs::copy_options::recursive);
    write_file(dir / c.name / "model.safetensors", c.content);
    for (const char* cmd : {"eval", "sample"}) {
      SCOPED_TRACE(cmd);
      const CliResult r = run_cli(dir.path(), {cmd, "-o", c.name, "--json"});
      expect_one_line_error(r, {c.name + "/model.safetensors", "corrupt"});
      EXPECT_TRUE(r.out.empty()) << r.out;
    }
  }

  fs::copy(dir / "good", dir / "no_words", fs::copy_options::recursive);
  fs::remove(dir / "no_words" / "words.txt");
  for (const char* cmd : {"eval", "sample"}) {
    SCOPED_TRACE(cmd);
    expect_one_line_error(run_cli(dir.path(), {cmd, "-o", "no_words"}), {"no_words/words.txt", "missing"});
  }
  fs::copy(dir / "good", dir / "no_ckpt", fs::copy_options::recursive);
  fs::remove(dir / "no_ckpt" / "model.safetensors");
  expect_one_line_error(run_cli(dir.path(), {"eval", "-o", "no_ckpt"}), {"no_ckpt/model.safetensors"});

  // Another word list with the same characters (two lines swapped: the 80/10/10 shuffle then
  // deals other examples): eval would report other splits' losses without a word.
  fs::copy(dir / "good", dir / "other_words", fs::copy_options::recursive);
  std::string list = read_file(dir / "good" / "words.txt");
  const std::size_t a = list.find('\n'), b = list.find('\n', a + 1);
  list = list.substr(a + 1, b - a) + list.substr(0, a + 1) + list.substr(b + 1);
  write_file(dir / "other_words" / "words.txt", list);
  for (const char* cmd : {"eval", "sample"}) {
    SCOPED_TRACE(cmd);
    expect_one_line_error(run_cli(dir.path(), {cmd, "-o", "other_words"}),
                          {"other_words/words.txt", "not the word list this run was trained on"});
  }
  expect_one_line_error(run_cli(dir.path(), {"train", "--resume", "-o", "other_words", "--steps", "40"}),
                        {"other_words/words.txt", "not the word list"});
}

// lecture-original with lr 1e6 alone does not diverge (the stable cross-entropy keeps the loss
// finite, ~1e7); without its tanh the two linear layers blow up to inf/nan within 3 steps.
json diverging_config(const TempDir& dir) {
  json cfg = preset_json(dir, "lecture-original");
  cfg["train"]["lr"] = 1e6;
  json layers = json::array();
  for (const auto& l : cfg["model"]["layers"])
    if (l["type"] != "tanh") layers.push_back(l);
  cfg["model"]["layers"] = layers;
  return cfg;
}

TEST(CliDiverge, FailsWithoutCheckpointOrResult) {
  TempDir dir;
  const std::string words = write_names(dir);
  write_file(dir / "diverge.json", diverging_config(dir).dump(2));
  // Without --json the logs go to stdout, so stderr is the error alone.
  const CliResult r = run_cli(dir.path(), {"train", "-i", words, "-o", "run", "--config", "diverge.json", "--steps", "50"});
  expect_one_line_error(r, {"diverged", "run/metrics.jsonl"});
  const auto metrics = split_lines(read_file(dir / "run" / "metrics.jsonl"));
  EXPECT_GE(metrics.size(), 1u);
  EXPECT_LT(metrics.size(), 50u);
  EXPECT_FALSE(fs::exists(dir / "run" / "model.safetensors"));
  EXPECT_FALSE(fs::exists(dir / "run" / "result.json"));

  // With --json the logs share stderr (by design); the error is still one line, the last,
  // and stdout holds no result.
  const CliResult j =
      run_cli(dir.path(), {"train", "-i", words, "-o", "run_json", "--config", "diverge.json", "--steps", "50", "--json"});
  EXPECT_FALSE(j.signaled);
  EXPECT_NE(j.exit_code, 0);
  EXPECT_TRUE(j.out.empty()) << "no result JSON on stdout: " << j.out;
  const auto err_lines = split_lines(j.err);
  ASSERT_FALSE(err_lines.empty());
  EXPECT_EQ(err_lines.back().rfind("makemore: error: training diverged", 0), 0u) << j.err;
  EXPECT_EQ(std::count_if(err_lines.begin(), err_lines.end(),
                          [](const std::string& l) { return l.rfind("makemore: error: ", 0) == 0; }),
            1);
  EXPECT_FALSE(fs::exists(dir / "run_json" / "result.json"));
  EXPECT_FALSE(fs::exists(dir / "run_json" / "model.safetensors"));
}

// A checkpoint holding NaN (written by an older build) is refused by name, not fed to the sampler.
TEST(CliDiverge, NonFiniteCheckpointIsRefused) {
  TempDir dir;
  const std::string words = write_names(dir);
  ASSERT_EQ(run_cli(dir.path(), {"train", "-i", words, "-o", "run", "--steps", "5", "-q", "--no-report"}).exit_code, 0);
  // Overwrite the first value of the first tensor with a NaN, with the data-only checksum of
  // the files written before the checksum covered the header (they still load).
  std::string f = read_file(dir / "run" / "model.safetensors");
  uint64_t n = 0;
  for (int k = 7; k >= 0; --k) n = (n << 8) | static_cast<unsigned char>(f[static_cast<std::size_t>(k)]);
  json header = json::parse(f.substr(8, n));
  header["__metadata__"].erase("makemore.fnv1a64");
  std::string data = f.substr(8 + n);
  const auto first = header.begin().key() == "__metadata__" ? std::next(header.begin()) : header.begin();
  const std::size_t at = (*first)["data_offsets"][0].get<std::size_t>();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::memcpy(data.data() + at, &nan, 4);
  uint64_t fnv = 0xcbf29ce484222325ULL;  // FNV-1a 64 of the data section
  for (unsigned char c : data) fnv = (fnv ^ c) * 0x100000001b3ULL;
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(fnv));
  header["__metadata__"]["makemore.data_fnv1a64"] = hex;
  std::string h = header.dump();
  h.resize(((h.size() + 7) / 8) * 8, ' ');
  std::string out(8, '\0');
  for (int k = 0; k < 8; ++k) out[static_cast<std::size_t>(k)] = static_cast<char>((h.size() >> (8 * k)) & 0xff);
  write_file(dir / "run" / "model.safetensors", out + h + data);
  for (const char* cmd : {"sample", "eval"}) {
    SCOPED_TRACE(cmd);
    expect_one_line_error(run_cli(dir.path(), {cmd, "-o", "run"}),
                          {"run/model.safetensors", "not finite", "lower learning rate"});
  }
}

}  // namespace

// Ctrl-C in a long training must not lose it: the step in flight finishes, the model so far is
// saved and evaluated, result.json says how many steps ran, and the exit status is 128 + signal.
namespace {

// Runs MM_BINARY and sends it `sig` 0.3 s after its training loop starts, or, with wait_for,
// once that file exists (at most 30 s).
CliResult run_cli_and_signal(const fs::path& cwd, const std::vector<std::string>& args, int sig, const fs::path& wait_for = {},
                             const std::string& started_marker = " steps, batch ") {
  const pid_t pid = spawn_cli(cwd, args);
  if (pid < 0) {
    CliResult r;
    r.err = "fork failed";
    return r;
  }
  // The loop starts right after the "N steps, batch B" line; signal a little after it.
  bool started = false;
  for (int i = 0; i < 3000 && !started; ++i) {
    usleep(10000);
    started = read_file(cli_stdout(cwd)).find(started_marker) != std::string::npos;
  }
  usleep(300000);
  // wait_for: a file, or a study store (a folder) to hold a finished training.
  const auto arrived = [&] { return fs::is_directory(wait_for) ? mm_test::store_size(wait_for) > 0 : fs::exists(wait_for); };
  for (int i = 0; i < 3000 && !wait_for.empty() && !arrived(); ++i) usleep(10000);
  kill(pid, sig);
  int status = 0;
  bool done = false;
  for (int i = 0; i < 3000 && !done; ++i) {  // 30 s; a run that ignored the signal is killed
    done = waitpid(pid, &status, WNOHANG) == pid;
    if (!done) usleep(10000);
  }
  if (!done) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    CliResult r = collect_cli(cwd, status);
    r.err = "still running 30 s after the signal\n" + r.err;
    return r;
  }
  EXPECT_TRUE(started) << "the training loop never started";
  return collect_cli(cwd, status);
}

}  // namespace

TEST(CliInterrupt, SavesTheRunSoFar) {
  for (const int sig : {SIGINT, SIGTERM}) {
    TempDir dir;
    const std::string words = write_names(dir);
    const CliResult r = run_cli_and_signal(dir.path(), {"train", "-i", words, "-o", "run", "--steps", "50000000"}, sig);
    SCOPED_TRACE(describe(r));
    ASSERT_FALSE(r.signaled);
    EXPECT_EQ(r.exit_code, 128 + sig);
    EXPECT_NE(r.err.find("makemore: interrupted after "), std::string::npos);
    const json res = json::parse(read_file(dir / "run" / "result.json"), nullptr, false);
    ASSERT_TRUE(res.is_object());
    EXPECT_EQ(res.value("interrupted", false), true);
    EXPECT_EQ(res.value("steps_planned", 0), 50000000);
    const auto steps = res.value("steps", int64_t{-1});
    EXPECT_GT(steps, 0);
    EXPECT_LT(steps, 50000000);
    const auto logged = split_lines(read_file(dir / "run" / "metrics.jsonl"));
    EXPECT_EQ(std::count_if(logged.begin(), logged.end(), [](const std::string& l) { return l.find("\"lr\"") != l.npos; }),
              steps);
    const CliResult ev = run_cli(dir.path(), {"eval", "-o", "run", "--json"});
    ASSERT_EQ(ev.exit_code, 0) << describe(ev);
    EXPECT_NEAR(last_json_line(ev).value("val_loss", 0.0), res.value("val_loss", -1.0), 1e-6);
    EXPECT_EQ(last_json_line(ev).value("step", int64_t{-1}), steps);

    // A new training into the folder (--resume forgotten) is refused naming both ways on (the
    // rule itself: test_run.cpp); --overwrite replaces it.
    if (sig == SIGINT) {
      fs::copy(dir / "run", dir / "stopped", fs::copy_options::recursive);
      expect_one_line_error(run_cli(dir.path(), {"train", "-i", words, "-o", "stopped", "--steps", "20"}),
                            {"stopped: holds a run that did not finish", "`makemore train --resume -o stopped`", "--overwrite"});
      EXPECT_EQ(run_cli(dir.path(), {"train", "-i", words, "-o", "stopped", "--steps", "20", "--overwrite", "-q"}).exit_code, 0);
    }

    // `train --resume` continues it (here to 150 steps past the stop) with the same bits as a
    // run of that length that never stopped: parameters, BatchNorm statistics, loss log.
    const std::string total = std::to_string(steps + 150);
    const CliResult cont = run_cli(dir.path(), {"train", "--resume", "-o", "run", "--steps", total, "--json"});
    ASSERT_EQ(cont.exit_code, 0) << describe(cont);
    EXPECT_EQ(last_json_line(cont).value("steps", int64_t{-1}), steps + 150);
    EXPECT_EQ(last_json_line(cont).value("interrupted", true), false);
    const CliResult straight = run_cli(dir.path(), {"train", "-i", words, "-o", "straight", "--steps", total, "--json"});
    ASSERT_EQ(straight.exit_code, 0) << describe(straight);
    EXPECT_TRUE(read_file(dir / "run" / "model.safetensors") == read_file(dir / "straight" / "model.safetensors"));
    EXPECT_TRUE(read_file(dir / "run" / "metrics.jsonl") == read_file(dir / "straight" / "metrics.jsonl"));
    EXPECT_EQ(last_json_line(cont).value("val_loss", 0.0), last_json_line(straight).value("val_loss", -1.0));
    EXPECT_EQ(last_json_line(cont).value("initial_loss", 0.0), last_json_line(straight).value("initial_loss", -1.0));
  }
}

// A run killed in its final evaluation (here: its result.json gone) is refused as unfinished by
// a new `train`, and `train --resume` finishes it without training, exit 0 (test_run.cpp kills
// one there for real).
TEST(CliInterrupt, ResumeFinishesARunKilledInItsFinalEvaluation) {
  TempDir dir;
  const std::string words = write_names(dir);
  ASSERT_EQ(run_cli(dir.path(), {"train", "-i", words, "-o", "run", "--steps", "30", "-q", "--no-report"}).exit_code, 0);
  const json done = json::parse(read_file(dir / "run" / "result.json"));
  fs::remove(dir / "run" / "result.json");
  expect_one_line_error(run_cli(dir.path(), {"train", "-i", words, "-o", "run", "--steps", "30"}),
                        {"run: holds a run that did not finish", "--resume"});
  const CliResult fin = run_cli(dir.path(), {"train", "--resume", "-o", "run", "--json"});
  ASSERT_EQ(fin.exit_code, 0) << describe(fin);
  EXPECT_NE(fin.err.find("all 30 steps were done; finishing the run"), std::string::npos) << fin.err;
  EXPECT_EQ(last_json_line(fin).at("val_loss"), done.at("val_loss"));
  EXPECT_TRUE(fs::exists(dir / "run" / "report.html"));
}

// --resume takes the run's own config and words: the options that would change them are refused
// by CLI11, and a folder that is not a run is one line (what resume checks: test_run.cpp).
TEST(CliInterrupt, ResumeOptions) {
  TempDir dir;
  const CliResult both = run_cli(dir.path(), {"train", "--resume", "-o", "run", "--preset", "lecture-kaiming"});
  EXPECT_NE(both.exit_code, 0);
  EXPECT_NE(both.err.find("--resume"), std::string::npos) << describe(both);
  expect_one_line_error(run_cli(dir.path(), {"train", "--resume", "-o", "nowhere", "--steps", "80"}), {"nowhere"});
}

// Command-line mistakes end like every other error: one "makemore: error:" line naming the
// option, pointing at the right --help; help and version still print normally.
// A kernel choice from the environment is checked before the command does anything: one
// line, exit 1, and no run folder started.
TEST(CliBadInput, KernelChoicesFromTheEnvironmentAreCheckedFirst) {
  TempDir dir;
  const std::string words = write_names(dir);
  struct Case {
    const char* var;
    const char* value;
    const char* message;
  };
  for (const Case& c :
       {Case{"MAKEMORE_TOKEN_LINEAR", "fast", "MAKEMORE_TOKEN_LINEAR=fast: unknown value; use off, portable or simd"},
        Case{"MAKEMORE_GEMM", "blas", "MAKEMORE_GEMM=blas: unknown value; use eigen or xsmm"}}) {
    SCOPED_TRACE(c.var);
    setenv(c.var, c.value, 1);
    const CliResult r = run_cli(dir.path(), {"train", "-i", words, "--steps", "5", "-o", "run"});
    unsetenv(c.var);
    expect_one_line_error(r, {c.message});
    EXPECT_FALSE(fs::exists(dir / "run"));
  }
  // Each valid value trains.
  for (const char* v : {"off", "portable"}) {
    setenv("MAKEMORE_TOKEN_LINEAR", v, 1);
    const CliResult r =
        run_cli(dir.path(), {"train", "-i", words, "--steps", "5", "-o", std::string("run-") + v, "-q", "--no-report"});
    unsetenv("MAKEMORE_TOKEN_LINEAR");
    EXPECT_EQ(r.exit_code, 0) << describe(r);
  }
}

TEST(CliBadInput, OptionErrorsAreOneLine) {
  TempDir dir;
  expect_one_line_error(run_cli(dir.path(), {"bench", "--steps", "0"}),
                        {"--steps", "at least 1, got '0'", "`makemore bench --help`"});
  expect_one_line_error(run_cli(dir.path(), {"train", "--lr", "fast"}),
                        {"--lr", "must be a finite number of at least 0, got 'fast'", "`makemore train --help`"});
  expect_one_line_error(run_cli(dir.path(), {"train", "--steps", "-3"}), {"--steps", "at least 0"});
  expect_one_line_error(run_cli(dir.path(), {"train", "--preset", "lecture-deep", "--config", "x.json"}), {"excludes"});
  expect_one_line_error(run_cli(dir.path(), {"study", "depth", "--bogus"}), {"--bogus", "`makemore study depth --help`"});
  expect_one_line_error(run_cli(dir.path(), {}), {"subcommand", "`makemore --help`"});
  expect_one_line_error(run_cli(dir.path(), {"traim"}), {"unknown command 'traim'", "train, sample", "`makemore --help`"});
  expect_one_line_error(run_cli(dir.path(), {"--bogus"}), {"unknown option '--bogus'", "`makemore --help`"});
  // Numbers: whole numbers for counts and seeds (no silent clamping or rounding), finite ones
  // for rates and temperatures.
  expect_one_line_error(run_cli(dir.path(), {"train", "--steps", "2.5"}), {"--steps", "whole number of at least 0, got '2.5'"});
  expect_one_line_error(run_cli(dir.path(), {"train", "--steps", "1e3"}), {"--steps", "got '1e3'"});
  expect_one_line_error(run_cli(dir.path(), {"train", "--seed", "18446744073709551616"}),
                        {"--seed", "got '18446744073709551616'"});
  expect_one_line_error(run_cli(dir.path(), {"train", "--lr", "inf"}), {"--lr", "finite number", "got 'inf'"});
  expect_one_line_error(run_cli(dir.path(), {"sample", "-o", "x", "--temperature", "nan"}),
                        {"--temperature", "from 1e-06 to", "got 'nan'"});
  expect_one_line_error(run_cli(dir.path(), {"sample", "-o", "x", "-n", "abc"}),
                        {"-n", "whole number from 1 to 1000000", "got 'abc'"});
  // An option that clashes with the network is named as typed, not as the config field.
  expect_one_line_error(run_cli(dir.path(), {"train", "--batch-size", "1", "--steps", "1", "-o", "b1"}),
                        {"--batch-size 1", "preset lecture-batchnorm has BatchNorm1d", "use --batch-size 2 or more"});
  for (const auto& ok : std::vector<std::vector<std::string>>{{"--help"}, {"train", "--help"}, {"--version"}}) {
    const CliResult r = run_cli(dir.path(), ok);
    EXPECT_EQ(r.exit_code, 0) << describe(r);
    EXPECT_FALSE(r.out.empty());
  }
}

// The shell's conventions: a usage error exits 2 (a runtime error 1), a likely typo of a command
// or an option gets a suggestion, `makemore help [COMMAND]` prints that command's help, and the
// usage line names `makemore`, not the path the binary was started by.
TEST(CliConventions, UsageErrorsSuggestionsAndHelp) {
  TempDir dir;
  const CliResult steps = run_cli(dir.path(), {"train", "--stpes", "5"});
  expect_one_line_error(steps, {"unknown option '--stpes'", "did you mean '--steps'?", "`makemore train --help`"});
  EXPECT_EQ(steps.exit_code, 2);
  const CliResult command = run_cli(dir.path(), {"trian"});
  expect_one_line_error(command, {"unknown command 'trian'", "did you mean 'train'?"});
  EXPECT_EQ(command.exit_code, 2);
  const CliResult sub = run_cli(dir.path(), {"study", "fidelty"});
  expect_one_line_error(sub, {"unknown command 'fidelty'", "did you mean 'fidelity'?"});
  EXPECT_EQ(sub.exit_code, 2);
  EXPECT_EQ(run_cli(dir.path(), {"train", "--lr", "fast"}).exit_code, 2);
  // Nothing close: no suggestion.
  const CliResult far = run_cli(dir.path(), {"train", "--zzzzzz"});
  EXPECT_EQ(far.exit_code, 2);
  EXPECT_EQ(far.err.find("did you mean"), std::string::npos) << far.err;
  // A runtime error stays 1.
  const CliResult missing = run_cli(dir.path(), {"train", "-i", "no-such-words.txt", "-o", "r"});
  expect_one_line_error(missing, {"no-such-words.txt"});
  EXPECT_EQ(missing.exit_code, 1);

  const CliResult help = run_cli(dir.path(), {"help", "train"});
  EXPECT_EQ(help.exit_code, 0) << describe(help);
  EXPECT_NE(help.out.find("Usage: makemore train [OPTIONS]"), std::string::npos) << help.out;
  EXPECT_NE(help.out.find("--steps"), std::string::npos);
  const CliResult nested = run_cli(dir.path(), {"help", "study", "init"});
  EXPECT_EQ(nested.exit_code, 0) << describe(nested);
  EXPECT_NE(nested.out.find("Usage: makemore study init"), std::string::npos) << nested.out;
  const CliResult top = run_cli(dir.path(), {"help"});
  EXPECT_EQ(top.exit_code, 0);
  EXPECT_NE(top.out.find("Usage: makemore [OPTIONS] SUBCOMMAND"), std::string::npos) << top.out;
  const CliResult bad = run_cli(dir.path(), {"help", "trian"});
  expect_one_line_error(bad, {"unknown command 'trian'", "did you mean 'train'?"});
  EXPECT_EQ(bad.exit_code, 2);
  const CliResult flag = run_cli(dir.path(), {"sample", "--help"});
  EXPECT_EQ(flag.exit_code, 0);
  EXPECT_NE(flag.out.find("Usage: makemore sample"), std::string::npos) << flag.out;
  EXPECT_EQ(flag.out.find("/makemore"), std::string::npos) << "the usage line names the binary's path";
}

// Without a terminal (pipes, as in a notebook or CI) train keeps the lecture's log on stdout and
// writes a progress line to stderr about every 10% of the run (step, loss, steps/s, time left).
TEST(CliConventions, ProgressLinesWithoutATerminal) {
  TempDir dir;
  const std::string words = write_names(dir);
  const CliResult r = run_cli(dir.path(), {"train", "-i", words, "--steps", "20000", "-o", "run", "--no-report"});
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  int progress = 0;
  for (const auto& line : split_lines(r.err)) {
    if (!line.starts_with("makemore: step ")) continue;
    ++progress;
    for (const char* part : {"/20000 (", "%) | loss ", " steps/s | ", "s left"})
      EXPECT_NE(line.find(part), std::string::npos) << line;
  }
  EXPECT_GE(progress, 9) << r.err;
  EXPECT_LE(progress, 12) << r.err;
  EXPECT_EQ(r.out.find("makemore: step "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("      0/  20000: "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("  10000/  20000: "), std::string::npos) << r.out;
  // -q: neither.
  const CliResult q = run_cli(dir.path(), {"train", "-i", words, "--steps", "300", "-o", "q", "--no-report", "-q"});
  ASSERT_EQ(q.exit_code, 0) << describe(q);
  EXPECT_EQ(q.err.find("makemore: step "), std::string::npos) << q.err;
}

// `presets` lists every preset in a column as wide as the longest name, with its parameter count
// for the word list's real vocabulary (names.txt: 27 tokens; lecture-batchnorm then has the
// lecture's 12,097 parameters).
TEST(CliConventions, PresetsShowTheirVocabularyInAWideEnoughColumn) {
  TempDir dir;
  const CliResult r = run_cli(dir.path(), {"presets"});
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  std::size_t longest = 0, listed = 0;
  std::set<std::size_t> params_at;  // where " params" starts: one column for every line
  for (const auto& p : mm::embedded_presets()) longest = std::max(longest, std::string(p.name).size());
  for (const auto& line : split_lines(r.out)) {
    for (const auto& p : mm::embedded_presets()) {
      const std::string name = p.name;
      if (!line.starts_with(name + " ")) continue;
      ++listed;
      EXPECT_GT(line.find_first_not_of(' ', name.size()), longest) << line;  // the name never runs into the count
      params_at.insert(line.find(" params"));
      if (name == "lecture-batchnorm") {
        EXPECT_NE(line.find(" 12097 params"), std::string::npos) << line;
      }
    }
  }
  EXPECT_EQ(params_at.size(), 1u) << r.out;
  EXPECT_EQ(listed, mm::embedded_presets().size()) << r.out;
  EXPECT_NE(r.out.find("27 tokens"), std::string::npos) << r.out;
}

// A run killed outright (SIGKILL: no handler runs) keeps its last periodic checkpoint
// (--save-every), and `train --resume` continues from it to the same bits, loss log and
// diagnostics as a run never killed; a torn last line in the logs is dropped.
TEST(CliInterrupt, KilledRunResumesFromItsLastCheckpoint) {
  TempDir dir;
  const std::string words = write_names(dir);
  const CliResult killed = run_cli_and_signal(
      dir.path(), {"train", "-i", words, "-o", "run", "--steps", "50000000", "--save-every", "1000", "--diag-every", "500"},
      SIGKILL, dir.path() / "run" / "model.safetensors");
  ASSERT_TRUE(killed.signaled) << describe(killed);
  EXPECT_FALSE(fs::exists(dir / "run" / "result.json"));
  ASSERT_TRUE(fs::exists(dir / "run" / "model.safetensors")) << "no checkpoint within 30 s of training";
  const CliResult ev = run_cli(dir.path(), {"eval", "-o", "run", "--json"});
  ASSERT_EQ(ev.exit_code, 0) << describe(ev);
  const int64_t saved = last_json_line(ev).value("step", int64_t{-1});
  ASSERT_GT(saved, 0);
  EXPECT_EQ(saved % 1000, 0);
  // The run continues from its train state: the checkpoint's step, or 1,000 later when the kill
  // landed between writing the two (safetensors: 8-byte header length, then the JSON header).
  const std::string state = read_file(dir / "run" / "train_state.safetensors");
  ASSERT_GT(state.size(), 8u);
  uint64_t header_len = 0;
  for (int k = 7; k >= 0; --k) header_len = (header_len << 8) | static_cast<unsigned char>(state[static_cast<std::size_t>(k)]);
  ASSERT_LE(8 + header_len, state.size());
  const json header = json::parse(state.substr(8, header_len), nullptr, false);
  const int64_t from = std::stoll(header["__metadata__"]["step"].get<std::string>());
  EXPECT_TRUE(from == saved || from == saved + 1000) << from << " vs checkpoint " << saved;
  const std::string total = std::to_string(from + 700);
  const CliResult cont = run_cli(dir.path(), {"train", "--resume", "-o", "run", "--steps", total, "--json"});
  ASSERT_EQ(cont.exit_code, 0) << describe(cont);
  const CliResult straight = run_cli(dir.path(), {"train", "-i", words, "-o", "straight", "--steps", total, "--save-every",
                                                  "1000", "--diag-every", "500", "--json"});
  ASSERT_EQ(straight.exit_code, 0) << describe(straight);
  for (const char* f : {"model.safetensors", "metrics.jsonl", "update_ratio.jsonl", "diagnostics.jsonl", "inspect.json"})
    EXPECT_TRUE(read_file(dir / "run" / f) == read_file(dir / "straight" / f)) << f;
}

// --- study init: a stopped study continues from its finished runs ----------------------------

namespace {
// Each variant's runs as (seed, initial, train, val) from study.json: what must not depend on
// whether a run was trained now or kept from an earlier invocation.
std::vector<std::vector<double>> study_runs(const fs::path& study_json) {
  const json s = json::parse(read_file(study_json));
  std::vector<std::vector<double>> rows;
  for (const auto& v : s.at("variants"))
    for (const auto& r : v.at("runs"))
      rows.push_back({r.at("seed").get<double>(), r.at("initial_loss").get<double>(), r.at("train_loss").get<double>(),
                      r.at("val_loss").get<double>()});
  return rows;
}
std::size_t count_files(const fs::path& dir) { return mm_test::store_size(dir); }
}  // namespace

TEST(CliStudy, InitKeepsFinishedRunsAndRetrainsTheRest) {
  TempDir dir;
  const std::string words = write_names(dir);
  const std::vector<std::string> args = {"study", "init", "-i", words, "--seeds", "2",     "--steps",
                                         "200",   "-j",   "2",  "-o",  "st",      "--json"};
  const CliResult first = run_cli(dir.path(), args);
  ASSERT_EQ(first.exit_code, 0) << describe(first);
  const json summary = last_json_line(first);
  ASSERT_TRUE(summary.is_object()) << describe(first);
  EXPECT_EQ(summary.at("reused"), 0);
  EXPECT_EQ(count_files(dir.path() / "st" / "runs"), 10u);
  const auto clean = study_runs(dir.path() / "st" / "study.json");
  ASSERT_EQ(clean.size(), 10u);
  // The summary's means are the runs' means.
  const json s = json::parse(read_file(dir.path() / "st" / "study.json"));
  for (const auto& v : s.at("variants")) {
    double sum = 0;
    for (const auto& r : v.at("runs")) sum += r.at("val_loss").get<double>();
    EXPECT_NEAR(v.at("val_loss").at("mean").get<double>(), sum / 2, 1e-12) << v.at("preset");
  }

  // A study stopped part way: two runs never finished (no file), one file torn, one from
  // another config. The rerun trains those four and keeps six; the trainings are
  // deterministic, so the study comes out the same.
  const fs::path store = dir.path() / "st" / "runs";
  fs::remove(mm_test::store_file(store, "lecture-kaiming-seed0"));
  fs::remove(mm_test::store_file(store, "lecture-batchnorm-seed1"));
  fs::remove(dir.path() / "st" / "study.json");
  write_file(mm_test::store_file(store, "lecture-fix-tanh-seed1"), "{\"key\": ");
  {
    const fs::path p = mm_test::store_file(store, "lecture-original-seed0");
    json other = json::parse(read_file(p));
    other["key"]["config"]["train"]["steps"] = 100;
    write_file(p, other.dump());
  }
  const CliResult again = run_cli(dir.path(), args);
  ASSERT_EQ(again.exit_code, 0) << describe(again);
  EXPECT_EQ(last_json_line(again).at("reused"), 6) << describe(again);
  EXPECT_NE(again.err.find("6 of them already finished in st/runs"), std::string::npos) << again.err;
  EXPECT_EQ(study_runs(dir.path() / "st" / "study.json"), clean);
  EXPECT_EQ(count_files(dir.path() / "st" / "runs"), 10u);

  // Everything kept on a third run; nothing with --no-resume, or on other words.
  EXPECT_EQ(last_json_line(run_cli(dir.path(), args)).at("reused"), 10);
  std::vector<std::string> fresh = args;
  fresh.push_back("--no-resume");
  EXPECT_EQ(last_json_line(run_cli(dir.path(), fresh)).at("reused"), 0);
  EXPECT_EQ(study_runs(dir.path() / "st" / "study.json"), clean);
  write_file(dir.path() / "other.txt", read_file(dir.path() / words) + "zyx\n");
  std::vector<std::string> other = args;
  other[3] = "other.txt";
  EXPECT_EQ(last_json_line(run_cli(dir.path(), other)).at("reused"), 0);
}

// A short study (300 steps, one seed): the loss curves have points (1,000-step chunks left a
// single point per variant and no line), and one seed reports no std rather than 0.0.
TEST(CliStudy, InitShortOneSeedStudy) {
  TempDir dir;
  const std::string words = write_names(dir);
  const CliResult r = run_cli(dir.path(), {"study", "init", "-i", words, "--seeds", "1", "--steps", "300", "-o", "st"});
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  const json s = json::parse(read_file(dir.path() / "st" / "study.json"));
  for (const auto& v : s.at("variants")) {
    SCOPED_TRACE(v.at("preset").get<std::string>());
    EXPECT_TRUE(v.at("val_loss").at("std").is_null());
    EXPECT_EQ(v.at("val_loss").at("n"), 1);
    const json& run = v.at("runs").at(0);
    EXPECT_EQ(run.at("loss_bucket"), 3);
    EXPECT_EQ(run.at("loss_buckets").size(), 100u);
  }
  const std::string svg = read_file(dir.path() / "st" / "figures" / "loss_curves.svg");
  EXPECT_NE(svg.find("each 3-step chunk"), std::string::npos);
  EXPECT_GE(std::count(svg.begin(), svg.end(), 'L'), 5 * 50) << "five curves of ~100 points";
  // study.html is the shared page: it had no stylesheet at all.
  const std::string html = read_file(dir.path() / "st" / "study.html");
  EXPECT_NE(html.find(mm::page::stylesheet()), std::string::npos);
  EXPECT_NE(html.find("<th class=\"l\">variant</th>"), std::string::npos);
}

// Ctrl-C in a study: one line says what is kept and how to go on; the rerun keeps it.
TEST(CliStudy, InterruptedStudySaysWhatIsKept) {
  TempDir dir;
  const std::string words = write_names(dir);
  const std::vector<std::string> args = {"study", "init", "-i", words, "--seeds", "1", "--steps", "20000", "-j", "1", "-o", "st"};
  const CliResult r = run_cli_and_signal(dir.path(), args, SIGINT, dir.path() / "st" / "runs", "study init: ");
  EXPECT_EQ(r.exit_code, 128 + SIGINT) << describe(r);
  EXPECT_NE(
      r.err.find("makemore: interrupted; the trainings finished so far are kept in st/runs/: the same command trains the rest"),
      std::string::npos)
      << r.err;
  EXPECT_FALSE(fs::exists(dir.path() / "st" / "study.json"));
  const std::size_t kept = count_files(dir.path() / "st" / "runs");
  ASSERT_GE(kept, 1u);
  ASSERT_LT(kept, 5u) << "the study should not have finished before the signal";
  const CliResult again = run_cli(dir.path(), args);
  ASSERT_EQ(again.exit_code, 0) << describe(again);
  EXPECT_NE(again.out.find(std::to_string(kept) + " of them already finished in st/runs"), std::string::npos) << again.out;
}

TEST(CliStudy, InitChecksItsFolderBeforeTraining) {
  TempDir dir;
  const std::string words = write_names(dir);
  write_file(dir.path() / "taken", "a file, not a folder\n");
  expect_one_line_error(run_cli(dir.path(), {"study", "init", "-i", words, "--seeds", "1", "--steps", "5", "-o", "taken"}),
                        {"taken", "-o DIR"});
}

TEST(CliStudy, FidelityKeepsItsTrainingsAndChecksTheStudyFirst) {
  TempDir dir;
  const std::string words = write_names(dir);
  // A missing or foreign --study folder is found before any training.
  expect_one_line_error(run_cli(dir.path(), {"study", "fidelity", "-i", words, "-o", "fid", "--study", "nowhere"}),
                        {"nowhere/study.json", "study init"});
  fs::create_directories(dir.path() / "fake");
  write_file(dir.path() / "fake" / "study.json", "{\"study\": \"depth\"}");
  expect_one_line_error(run_cli(dir.path(), {"study", "fidelity", "-i", words, "-o", "fid", "--study", "fake"}),
                        {"fake/study.json", "study init"});
  ASSERT_EQ(run_cli(dir.path(), {"study", "init", "-i", words, "--seeds", "1", "--steps", "30", "-o", "short"}).exit_code, 0);
  expect_one_line_error(run_cli(dir.path(), {"study", "fidelity", "-i", words, "-o", "fid", "--study", "short"}),
                        {"short/study.json", "trained 30 steps", "200000"});
  EXPECT_EQ(count_files(dir.path() / "fid" / "runs"), 0u);

  // Six 200k-step trainings and the video's two of 40,001 (fast on 300 names), kept; the rerun
  // reuses them all and prints the same numbers.
  const CliResult first = run_cli(dir.path(), {"study", "fidelity", "-i", words, "-o", "fid", "-j", "2", "--json"});
  ASSERT_EQ(first.exit_code, 0) << describe(first);
  EXPECT_EQ(count_files(dir.path() / "fid" / "runs"), 8u);
  const json a = last_json_line(first);
  const CliResult again = run_cli(dir.path(), {"study", "fidelity", "-i", words, "-o", "fid", "--json"});
  ASSERT_EQ(again.exit_code, 0) << describe(again);
  EXPECT_NE(again.err.find("already done; kept"), std::string::npos) << again.err;
  const json b = last_json_line(again);
  ASSERT_TRUE(a.is_object() && b.is_object());
  EXPECT_EQ(a.at("rows"), b.at("rows"));
  EXPECT_GT(a.at("total").get<int>(), 40);
}

// --calibrate sets BatchNorm statistics; a network without BatchNorm says so and reports
// "calibrated": false rather than claiming a calibration that did not happen.
TEST(CliCalibrate, SaysWhenThereIsNothingToCalibrate) {
  TempDir dir;
  const std::string words = write_names(dir);
  for (const std::string preset : {"lecture-kaiming", "lecture-batchnorm"}) {
    SCOPED_TRACE(preset);
    const bool has_bn = preset == "lecture-batchnorm";
    const CliResult tr = run_cli(dir.path(), {"train", "-i", words, "-o", preset, "--preset", preset, "--steps", "20", "-q",
                                              "--no-report", "--calibrate"});
    ASSERT_EQ(tr.exit_code, 0) << describe(tr);
    EXPECT_EQ(tr.err.find("nothing to calibrate") != std::string::npos, !has_bn) << tr.err;
    const CliResult ev = run_cli(dir.path(), {"eval", "-o", preset, "--calibrate", "--json"});
    ASSERT_EQ(ev.exit_code, 0) << describe(ev);
    EXPECT_EQ(last_json_line(ev).at("calibrated").get<bool>(), has_bn);
    EXPECT_EQ(ev.err.find("nothing to calibrate") != std::string::npos, !has_bn) << ev.err;
  }
}

// One version everywhere: --version, result.json and the checkpoint's metadata name the same
// build (the release number from CMakeLists.txt, plus the commit in a git checkout).
TEST(CliVersion, VersionResultAndCheckpointAgree) {
  TempDir dir;
  const std::string words = write_names(dir);
  const CliResult v = run_cli(dir.path(), {"--version"});
  ASSERT_EQ(v.exit_code, 0) << describe(v);
  const std::string version = mm::version_string();
  EXPECT_EQ(version.rfind(MM_PROJECT_VERSION, 0), 0u) << version;
  EXPECT_EQ(split_lines(v.out).at(0), "makemore.cpp " + version);
  // Built from a git checkout (CI's fresh clone, a worktree): the commit, one git knows, with
  // "-dirty" for uncommitted changes; from a tarball: the release number alone.
  const bool checkout = fs::exists(fs::path(MM_SOURCE_DIR) / ".git");
  if (checkout && std::system("git --version >/dev/null 2>&1") == 0) {
    const auto open = version.find(" (git "), close = version.rfind(')');
    ASSERT_NE(open, std::string::npos) << version;
    ASSERT_EQ(close, version.size() - 1) << version;
    std::string commit = version.substr(open + 6, close - open - 6);
    if (commit.ends_with("-dirty")) commit.resize(commit.size() - 6);
    const std::string check = "git -C '" + std::string(MM_SOURCE_DIR) + "' cat-file -e '" + commit + "^{commit}' 2>/dev/null";
    EXPECT_EQ(std::system(check.c_str()), 0) << commit;
  } else if (!checkout) {
    EXPECT_EQ(version, MM_PROJECT_VERSION);
  }
  const CliResult tr = run_cli(dir.path(), {"train", "-i", words, "-o", "run", "--steps", "3", "-q", "--no-report"});
  ASSERT_EQ(tr.exit_code, 0) << describe(tr);
  EXPECT_EQ(json::parse(read_file(dir / "run" / "result.json")).at("makemore_version"), version);
  EXPECT_EQ(mm::load_safetensors((dir / "run" / "model.safetensors").string()).metadata.at("makemore_version"), version);
}
