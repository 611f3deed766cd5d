// Tests for run.cpp and atomic_file.cpp, in-process: a run folder's whole life through the
// library's Run (create, train, stop, resume, diverge, finish), result.json's one schema, the
// lock, and what a kill at each save, a planted symbolic link or a leftover temp file can and
// cannot do. A kill is simulated in a forked child stopped (_exit) right after a chosen file was
// committed; the parent then continues the folder and compares it with a run never stopped.
// test_cli.cpp keeps the few end-to-end checks of signals and exit codes.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "makemore/atomic_file.h"
#include "makemore/diag.h"
#include "makemore/error.h"
#include "makemore/metrics.h"
#include "makemore/presets.h"
#include "makemore/report.h"
#include "makemore/run.h"
#include "makemore/run_record.h"
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

// 300 made-up names from a fixed LCG: the same list every run, 80/10/10-splittable.
mm::Dataset made_up_words() {
  static const char* syl[] = {"ka", "lo", "mi", "ra", "en", "is",  "ta", "no", "bel", "dor", "fi", "ja",
                              "qu", "ve", "xi", "zo", "wy", "han", "ce", "gu", "py",  "so",  "ul", "th"};
  uint64_t state = 12345;
  auto next = [&state](uint64_t bound) {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (state >> 33) % bound;
  };
  std::vector<std::u32string> words;
  for (int i = 0; i < 300; ++i) {
    std::string w;
    for (uint64_t k = 0, parts = 1 + next(3); k < parts; ++k) w += syl[next(24)];
    words.emplace_back(w.begin(), w.end());
  }
  return mm::Dataset::from_words(words, "made-up names");
}

mm::Config small_config(int64_t steps) {
  mm::Config cfg = mm::load_preset("lecture-batchnorm");
  cfg.steps = steps;
  return cfg;
}

mm::RunSettings quiet(int64_t diag_every, int64_t save_every, bool report = false) {
  mm::RunSettings s;
  s.diag_every = diag_every;
  s.save_every = save_every;
  s.report = report;
  return s;
}

// Raises the stop flag once step `at` has run: the next step is not taken.
class StopAt : public mm::Observer {
 public:
  StopAt(int64_t at, std::atomic<bool>* flag) : at_(at), flag_(flag) {}
  void after_update(mm::Trainer&, int64_t step, double) override {
    if (step == at_) flag_->store(true);
  }

 private:
  int64_t at_;
  std::atomic<bool>* flag_;
};

mm::RunResult train_new(const fs::path& dir, int64_t steps, const mm::RunSettings& s, int64_t stop_after = -1) {
  mm::Run run = mm::Run::create(dir.string(), small_config(steps), made_up_words(), "test", true, s);
  std::atomic<bool> stop{false};
  StopAt stopper(stop_after, &stop);
  mm::TrainHooks hooks;
  hooks.stop = &stop;
  hooks.observers.push_back(&stopper);
  return run.train(hooks);
}

// The files two folders must share byte for byte when one was stopped and continued and the
// other never stopped.
void expect_same_run(const fs::path& a, const fs::path& b) {
  for (const char* f :
       {mm::kCheckpointFile, mm::kMetricsFile, mm::kDiagnosticsFile, mm::kUpdateRatioFile, mm::kInspectFile, mm::kTrainStateFile})
    EXPECT_TRUE(read_file(a / f) == read_file(b / f)) << f << " differs";
  const json ra = json::parse(read_file(a / mm::kResultFile)), rb = json::parse(read_file(b / mm::kResultFile));
  for (const char* k : {"train_loss", "val_loss", "test_loss", "initial_loss", "steps"}) EXPECT_EQ(ra[k], rb[k]) << k;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const mm::Error& e) {
    return e.what();
  }
  return "";
}

// ---- killing a child at a chosen commit ----------------------------------------------------

std::string g_kill_file;  // the file whose n-th commit ends the child
int g_kill_at = 0, g_commits = 0;
void kill_after_commit(const std::string& path) {
  if (fs::path(path).filename() == g_kill_file && ++g_commits == g_kill_at) _exit(42);
}

// Runs `body` in a child that dies right after the `nth` commit of `file`. True when it died
// there (not earlier, not by finishing).
bool run_killed_at(const std::string& file, int nth, const std::function<void()>& body) {
  const pid_t pid = fork();
  if (pid == 0) {
    g_kill_file = file;
    g_kill_at = nth;
    g_commits = 0;
    mm::testing_hooks::after_commit = kill_after_commit;
    try {
      body();
    } catch (...) {
      _exit(1);
    }
    _exit(0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) && WEXITSTATUS(status) == 42;
}

const std::set<std::string> kResultKeys = {"preset",        "input",          "initial_loss", "expected_initial_loss",
                                           "train_loss",    "val_loss",       "test_loss",    "steps",
                                           "steps_planned", "interrupted",    "diverged",     "diverged_step",
                                           "seconds",       "steps_per_sec",  "eval_seconds", "val_curve_seconds",
                                           "threads",       "peak_memory_mb", "seed",         "vocab_size",
                                           "params",        "examples",       "run_dir",      "makemore_version"};

std::set<std::string> keys_of(const json& j) {
  std::set<std::string> k;
  for (const auto& [key, v] : j.items()) k.insert(key);
  return k;
}

}  // namespace

// A finished run: every file in place, result.json in its one schema, and Run::open reads back
// the model result.json describes.
TEST(RunLife, FinishedRunWritesOneResultSchemaAndOpens) {
  TempDir dir;
  const mm::RunResult r = train_new(dir / "run", 40, quiet(8, 16));
  ASSERT_TRUE(r.divergence.empty()) << r.divergence;
  for (const char* f : {mm::kCheckpointFile, mm::kConfigFile, mm::kWordsFile, mm::kMetricsFile, mm::kResultFile,
                        mm::kTrainStateFile, mm::kDiagnosticsFile, mm::kUpdateRatioFile, mm::kInspectFile, mm::kLockFile})
    EXPECT_TRUE(fs::is_regular_file(dir / "run" / f)) << f;
  const json res = json::parse(read_file(dir / "run" / mm::kResultFile));
  EXPECT_EQ(res, r.json);
  EXPECT_EQ(keys_of(res), kResultKeys);
  EXPECT_EQ(res["steps"], 40);
  EXPECT_EQ(res["steps_planned"], 40);
  EXPECT_EQ(res["interrupted"], false);
  EXPECT_EQ(res["diverged"], false);
  EXPECT_TRUE(res["diverged_step"].is_null());
  EXPECT_EQ(res["input"], "made-up names");

  mm::Run opened = mm::Run::open((dir / "run").string());
  EXPECT_EQ(opened.step(), 40);
  EXPECT_EQ(opened.losses().size(), 40u);
  const mm::SplitLosses l = opened.evaluate();
  EXPECT_EQ(l.val, res["val_loss"].get<double>());
  EXPECT_EQ(l.test, res["test_loss"].get<double>());
  ASSERT_TRUE(opened.result().has_value());
  EXPECT_EQ(*opened.result(), res);
  EXPECT_NE(error_of([&] { opened.train(); }).find("opened to read"), std::string::npos);
  // Sampling: the lecture's default seed (the run's + 10), and a seed makes it repeatable.
  mm::SampleOptions so;
  so.count = 5;
  const auto a = opened.sample(so), b = opened.sample(so, opened.config().seed + 10), c = opened.sample(so, 7);
  EXPECT_EQ(a, b);
  EXPECT_EQ(a.size(), 5u);
  EXPECT_NE(a, c);
}

// A front end follows a training through a callback every N steps (and the last).
TEST(RunLife, StepCallbackSeesEveryNthStepAndTheLast) {
  TempDir dir;
  mm::Run run = mm::Run::create((dir / "run").string(), small_config(25), made_up_words(), "test", false, quiet(0, 0));
  std::vector<int64_t> steps;
  std::vector<float> losses;
  mm::StepCallback cb(10, [&](int64_t step, float loss) {
    steps.push_back(step);
    losses.push_back(loss);
  });
  mm::TrainHooks hooks;
  hooks.observers.push_back(&cb);
  run.train(hooks);
  EXPECT_EQ(steps, (std::vector<int64_t>{9, 19, 24}));
  const std::vector<float> logged = run.losses();
  ASSERT_EQ(logged.size(), 25u);
  EXPECT_EQ(losses, (std::vector<float>{logged[9], logged[19], logged[24]}));
}

// The stop flag: the step in flight finishes, the run so far is saved and evaluated, result.json
// says so; a new run does not replace it unless told to; resume continues to the same bits as a
// run never stopped (model, logs, diagnostics, state).
TEST(RunLife, StoppedRunIsKeptAndResumesToTheSameBits) {
  TempDir dir;
  train_new(dir / "straight", 60, quiet(4, 10));
  const mm::RunResult stopped = train_new(dir / "run", 60, quiet(4, 10), 24);
  EXPECT_TRUE(stopped.stats.interrupted);
  EXPECT_EQ(stopped.stats.steps, 25);
  EXPECT_EQ(keys_of(stopped.json), kResultKeys);
  EXPECT_EQ(stopped.json["interrupted"], true);
  EXPECT_EQ(stopped.json["steps_planned"], 60);
  EXPECT_TRUE(stopped.report_path.empty());  // no report for a stopped run

  const std::string dir_s = (dir / "run").string();
  EXPECT_EQ(error_of([&] { mm::Run::create(dir_s, small_config(20), made_up_words(), "test", false, quiet(4, 10)); }),
            dir_s + ": holds a run that did not finish (25 of 60 steps); continue it with `makemore train --resume -o " + dir_s +
                "`, or pass --overwrite to replace it with this new run");
  {
    mm::Run run = mm::Run::resume(dir_s);
    EXPECT_EQ(run.step(), 25);
    EXPECT_FALSE(run.finishing());
    const mm::RunResult r = run.train();
    EXPECT_EQ(r.resumed_from, 25);
    EXPECT_EQ(r.stats.steps, 60);
    EXPECT_EQ(r.json["interrupted"], false);
  }
  expect_same_run(dir / "run", dir / "straight");
  // Finished now: replaced by a new run without --overwrite; a finished run resumes only further.
  EXPECT_EQ(error_of([&] { mm::Run::resume(dir_s); }),
            dir_s + ": the run already has 60 of its 60 steps; pass --steps N with N > 60 to train it further");
  EXPECT_NE(error_of([&] { mm::Run::resume(dir_s, 30); }).find("--steps 30: the run in " + dir_s + " already has 60 steps"),
            std::string::npos);
  EXPECT_EQ(error_of([&] { mm::Run::create(dir_s, small_config(10), made_up_words(), "test", false, quiet(0, 0)); }), "");
}

// The learning rate jumps to 1e6 at step 20 in a net without tanh: the run diverges after a
// periodic save of step 20. That checkpoint is evaluated and described by result.json (the same
// schema, diverged set); without a checkpoint nothing is claimed.
TEST(RunLife, DivergenceKeepsTheLastGoodCheckpoint) {
  TempDir dir;
  json j = mm::load_preset("lecture-original").to_json();
  json layers = json::array();
  for (const auto& l : j["model"]["layers"])
    if (l["type"] != "tanh") layers.push_back(l);
  j["model"]["layers"] = layers;
  j["train"]["lr"] = json{{"values", {1e-4, 1e6}}, {"boundaries", {20}}};
  j["train"]["steps"] = 50;
  const mm::Config cfg = mm::parse_config(j, "diverge.json");
  {
    mm::Run run = mm::Run::create((dir / "run").string(), cfg, made_up_words(), "diverge.json", false, quiet(0, 10));
    const mm::RunResult r = run.train();
    EXPECT_TRUE(r.stats.diverged);
    EXPECT_NE(r.divergence.find("training diverged at step 2"), std::string::npos) << r.divergence;
    EXPECT_NE(r.divergence.find("the model of step 20 is kept in " + (dir / "run").string() + "/model.safetensors"),
              std::string::npos)
        << r.divergence;
    EXPECT_EQ(keys_of(r.json), kResultKeys);
    EXPECT_EQ(r.json["diverged"], true);
    EXPECT_EQ(r.json["steps"], 20);
    EXPECT_EQ(r.json["interrupted"], false);
    EXPECT_GE(r.json["diverged_step"].get<int>(), 20);
    EXPECT_EQ(json::parse(read_file(dir / "run" / mm::kResultFile)), r.json);
    mm::Run kept = mm::Run::open((dir / "run").string());
    EXPECT_EQ(kept.step(), 20);
    EXPECT_EQ(kept.evaluate().val, r.json["val_loss"].get<double>());
  }
  // A diverged run is replaced without --overwrite; diverging before any save leaves no result.
  mm::Run again = mm::Run::create((dir / "run").string(), cfg, made_up_words(), "diverge.json", false, quiet(0, 0));
  const mm::RunResult r = again.train();
  EXPECT_TRUE(r.json.is_null());
  EXPECT_NE(r.divergence.find("lower the learning rate"), std::string::npos) << r.divergence;
  EXPECT_FALSE(fs::exists(dir / "run" / mm::kResultFile));
  EXPECT_FALSE(fs::exists(dir / "run" / mm::kCheckpointFile));
}

// Issue 16 item 7: killed after its final checkpoint but before result.json (or after its final
// train state but before that checkpoint), a run is finished by resume: evaluation, result and
// report, no training, the same files as a run never killed.
TEST(RunKilled, InItsFinalEvaluationIsFinishedByResume) {
  TempDir dir;
  train_new(dir / "straight", 40, quiet(8, 16, true));
  // Saves: state and checkpoint at 16 and 32, then the final state (40) and checkpoint (40).
  for (const auto& [file, nth] : {std::pair{mm::kCheckpointFile, 3}, std::pair{mm::kTrainStateFile, 3}}) {
    SCOPED_TRACE(file);
    const fs::path run_dir = dir / (std::string("run-") + file);
    ASSERT_TRUE(run_killed_at(file, nth, [&] { train_new(run_dir, 40, quiet(8, 16, true)); }));
    ASSERT_FALSE(fs::exists(run_dir / mm::kResultFile));
    mm::Run run = mm::Run::resume(run_dir.string());
    EXPECT_TRUE(run.finishing());
    const mm::RunResult r = run.train();
    EXPECT_EQ(r.resumed_from, 40);
    EXPECT_EQ(r.stats.steps, 40);  // nothing trained
    EXPECT_FALSE(r.report_path.empty()) << r.report_error;
    expect_same_run(run_dir, dir / "straight");
    EXPECT_TRUE(fs::exists(run_dir / mm::kReportFile));
  }
}

// Issue 16 item 8: a kill (the second Ctrl-C) at any moment of the stop-save leaves a folder
// that resume continues to the same bits, logs and diagnostics as a run never stopped: the logs
// reach the disk before the train state that counts them.
TEST(RunKilled, DuringTheStopSaveLosesNothing) {
  TempDir dir;
  train_new(dir / "straight", 60, quiet(4, 10));
  // The stop-save after step 25: inspect.json, then the state, the checkpoint, result.json.
  const std::pair<const char*, int> kills[] = {{mm::kInspectFile, 1}, {mm::kTrainStateFile, 3}, {mm::kCheckpointFile, 3}};
  for (const auto& [file, nth] : kills) {
    SCOPED_TRACE(file);
    const fs::path run_dir = dir / (std::string("run-") + file);
    ASSERT_TRUE(run_killed_at(file, nth, [&] { train_new(run_dir, 60, quiet(4, 10), 24); }));
    mm::Run run = mm::Run::resume(run_dir.string());
    EXPECT_FALSE(run.finishing());
    run.train();
    expect_same_run(run_dir, dir / "straight");
  }
  // The first save of all (no periodic saves before the stop): killed between the train state
  // and the checkpoint, the continued run's checkpoint still records the word list it trained on.
  train_new(dir / "straight-unsaved", 60, quiet(4, 0));
  const fs::path run_dir = dir / "run-first-save";
  ASSERT_TRUE(run_killed_at(mm::kTrainStateFile, 1, [&] { train_new(run_dir, 60, quiet(4, 0), 24); }));
  ASSERT_FALSE(fs::exists(run_dir / mm::kCheckpointFile));
  mm::Run::resume(run_dir.string()).train();
  expect_same_run(run_dir, dir / "straight-unsaved");
}

// Issue 16 item 9: one writer per folder. A second one is refused naming the holder's pid; the
// lock dies with its holder, however it ends.
TEST(RunLock, ASecondWriterIsRefusedNamingTheHolder) {
  TempDir dir;
  const std::string d = (dir / "run").string();
  {
    mm::Run first = mm::Run::create(d, small_config(5), made_up_words(), "test", true, quiet(0, 0));
    EXPECT_EQ(error_of([&] { mm::Run::create(d, small_config(5), made_up_words(), "test", true, quiet(0, 0)); }),
              d + ": another makemore process (pid " + std::to_string(getpid()) +
                  ") is writing this run folder; wait for it to end, or pick another -o DIR");
    first.train();
    EXPECT_NE(error_of([&] { mm::Run::resume(d, 10); }).find("another makemore process"), std::string::npos);
  }
  // A child holds it, then is killed outright: the lock goes with it.
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  const pid_t child = fork();
  if (child == 0) {
    try {
      mm::Run held = mm::Run::resume(d, 10);
      if (write(ready[1], "x", 1) != 1) _exit(2);
      pause();
    } catch (...) {
      _exit(1);
    }
    _exit(0);
  }
  char c = 0;
  ASSERT_EQ(read(ready[0], &c, 1), 1);
  EXPECT_NE(error_of([&] { mm::Run::resume(d, 10); }).find("(pid " + std::to_string(child) + ")"), std::string::npos);
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  EXPECT_EQ(error_of([&] { mm::Run::resume(d, 10).train(); }), "");
  close(ready[0]);
  close(ready[1]);
}

// Issue 16 item 10: links planted in a run folder (the logs, result.json, figures/, an old-style
// predictable temp name) never make a training or its report write outside the folder.
TEST(RunFolder, SymbolicLinksAreReplacedNeverWrittenThrough) {
  TempDir dir;
  const fs::path run = dir / "run", outside = dir / "outside";
  fs::create_directories(run);
  fs::create_directories(outside / "figs");
  write_file(outside / "figs" / "keep.svg", "theirs");
  // Older versions saved through FILE.tmp.<pid>: links at those names, for this very process.
  const std::string pid = std::to_string(getpid());
  const std::vector<std::string> old_temps = {std::string(mm::kCheckpointFile) + ".tmp." + pid,
                                              std::string(mm::kTrainStateFile) + ".tmp." + pid, "config.json.tmp." + pid};
  for (const auto& t : old_temps) {
    write_file(outside / t, "theirs");
    fs::create_symlink(outside / t, run / t);
  }
  for (const char* f : {mm::kMetricsFile, mm::kDiagnosticsFile, mm::kUpdateRatioFile, mm::kResultFile, "config.json.tmp.12345"}) {
    write_file(outside / f, "theirs");
    fs::create_symlink(outside / f, run / f);
  }
  fs::create_symlink(outside / "figs", run / mm::kFiguresDir);
  const mm::RunResult r = train_new(run, 20, quiet(5, 10, true));
  ASSERT_FALSE(r.report_path.empty()) << r.report_error;
  for (const char* f : {mm::kMetricsFile, mm::kDiagnosticsFile, mm::kUpdateRatioFile, mm::kResultFile, "config.json.tmp.12345"}) {
    EXPECT_EQ(read_file(outside / f), "theirs") << f;
    if (std::string(f).find(".tmp.") == std::string::npos) {
      EXPECT_FALSE(fs::is_symlink(run / f)) << f;
    }
  }
  for (const auto& t : old_temps) EXPECT_EQ(read_file(outside / t), "theirs") << t;
  std::vector<std::string> figs;
  for (const auto& e : fs::directory_iterator(outside / "figs")) figs.push_back(e.path().filename().string());
  EXPECT_EQ(figs, std::vector<std::string>{"keep.svg"});
  EXPECT_FALSE(fs::is_symlink(run / mm::kFiguresDir));
  EXPECT_TRUE(fs::exists(run / mm::kFiguresDir / "loss.svg"));

  // Resumed with its loss log a link: the link goes (the note says the log was cut), its target stays.
  fs::remove(run / mm::kMetricsFile);
  fs::create_symlink(outside / mm::kMetricsFile, run / mm::kMetricsFile);
  std::vector<std::string> notes;
  mm::RunSettings s = quiet(5, 10);
  s.note = [&](const std::string& n) { notes.push_back(n); };
  mm::Run::resume(run.string(), 30, s).train();
  EXPECT_EQ(read_file(outside / mm::kMetricsFile), "theirs");
  EXPECT_FALSE(fs::is_symlink(run / mm::kMetricsFile));
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_NE(notes[0].find("holds the losses of 0 of the 20 steps done"), std::string::npos) << notes[0];

  // The lock file itself as a link: refused by name.
  fs::remove(run / mm::kLockFile);
  fs::create_symlink(outside / "lock", run / mm::kLockFile);
  EXPECT_NE(error_of([&] { mm::Run::resume(run.string(), 40); }).find(".lock: is a symbolic link"), std::string::npos);
}

// Issue 16 item 10, `makemore report` on a finished folder whose figures/ someone replaced by a
// link: the report draws into a real figures/ of its own; the link's target, its figures and
// the stale ones there included, is left alone.
TEST(RunFolder, AReportNeverDrawsIntoALinkedFiguresFolder) {
  TempDir dir;
  const fs::path run = dir / "run", outside = dir / "outside";
  train_new(run, 10, quiet(5, 0));
  fs::create_directories(outside);
  for (const char* f : {"keep.svg", "loss.svg", "saturation.png"}) write_file(outside / f, "theirs");
  fs::remove_all(run / mm::kFiguresDir);
  fs::create_symlink(outside, run / mm::kFiguresDir);
  mm::write_report({run.string(), "", 5, true});
  for (const char* f : {"keep.svg", "loss.svg", "saturation.png"}) EXPECT_EQ(read_file(outside / f), "theirs") << f;
  EXPECT_EQ(std::distance(fs::directory_iterator(outside), fs::directory_iterator()), 3);
  EXPECT_FALSE(fs::is_symlink(run / mm::kFiguresDir));
  EXPECT_TRUE(fs::exists(run / mm::kFiguresDir / "loss.svg"));
}

// The writer itself: an unpredictable temp name each time, created exclusively beside the
// target; a failed write leaves the old file and no temp file.
TEST(RunFolder, AtomicWriteReplacesWholeFilesOnly) {
  TempDir dir;
  const std::string target = (dir / "a.json").string();
  mm::write_file_atomic(target, "one");
  std::set<std::string> temps;
  for (int i = 0; i < 3; ++i) {
    mm::AtomicFile f(target);
    f.write("partial");
    for (const auto& e : fs::directory_iterator(dir.path()))
      if (e.path().filename() != "a.json") temps.insert(e.path().filename().string());
  }  // never committed
  EXPECT_EQ(temps.size(), 3u);
  for (const auto& t : temps) EXPECT_EQ(t.rfind("a.json.tmp.", 0), 0u) << t;
  EXPECT_EQ(read_file(target), "one");
  EXPECT_EQ(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator()), 1);
  mm::write_file_atomic(target, "two");
  EXPECT_EQ(read_file(target), "two");
}

namespace {
int g_suffix_calls = 0;
std::string always_the_same_suffix() { return "0123456789abcdef"; }
std::string taken_once_suffix() { return ++g_suffix_calls == 1 ? "0123456789abcdef" : "fedcba9876543210"; }
}  // namespace

// Issue 16 item 10, the writer itself: a link planted at the very temp name the writer tries (a
// test hook fixes the name) is neither followed nor replaced: the exclusive create refuses it and
// the writer tries another name; when every name is taken, the error names the file and nothing
// is written anywhere.
TEST(RunFolder, ALinkPlantedAtTheTempNameIsNeverWrittenThrough) {
  TempDir dir;
  const fs::path target = dir / "a.json", outside = dir / "outside.txt", planted = dir / "a.json.tmp.0123456789abcdef";
  write_file(outside, "theirs");
  fs::create_symlink(outside, planted);
  struct Reset {
    ~Reset() { mm::testing_hooks::temp_suffix = nullptr; }
  } reset;
  mm::testing_hooks::temp_suffix = taken_once_suffix;
  mm::write_file_atomic(target.string(), "ours");
  EXPECT_EQ(g_suffix_calls, 2);
  EXPECT_FALSE(fs::is_symlink(target));
  EXPECT_EQ(read_file(target), "ours");
  EXPECT_EQ(read_file(outside), "theirs");
  EXPECT_TRUE(fs::is_symlink(planted));
  mm::testing_hooks::temp_suffix = always_the_same_suffix;
  const std::string err = error_of([&] { mm::write_file_atomic(target.string(), "again"); });
  EXPECT_EQ(err.rfind(target.string() + ": cannot write (File exists)", 0), 0u) << err;
  EXPECT_EQ(read_file(target), "ours");
  EXPECT_EQ(read_file(outside), "theirs");
}

namespace {
// A file size limit for this process while alive: write(2) beyond it fails (EFBIG) the way it
// fails on a full disk (ENOSPC), instead of raising SIGXFSZ.
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    getrlimit(RLIMIT_FSIZE, &old_);
    old_handler_ = std::signal(SIGXFSZ, SIG_IGN);
    rlimit l = old_;
    l.rlim_cur = bytes;
    setrlimit(RLIMIT_FSIZE, &l);
  }
  ~FileSizeLimit() {
    setrlimit(RLIMIT_FSIZE, &old_);
    std::signal(SIGXFSZ, old_handler_);
  }
  FileSizeLimit(const FileSizeLimit&) = delete;
  FileSizeLimit& operator=(const FileSizeLimit&) = delete;

 private:
  rlimit old_{};
  void (*old_handler_)(int) = nullptr;
};
}  // namespace

// Issue 16 item 11: a write that fails (a full disk; here a file size limit, which fails write(2)
// the same way) is an error naming the file and what to check, both for a file saved whole and
// for the logs a training streams; a file saved whole keeps its old version and leaves no temp file.
TEST(RunFolder, AFailedWriteIsAnErrorNamingTheFile) {
  TempDir dir;
  const std::string target = (dir / "a.json").string();
  mm::write_file_atomic(target, "old");
  const fs::path run = dir / "run";
  std::string err_whole, err_log;
  {
    FileSizeLimit limit(64 << 10);
    err_whole = error_of([&] { mm::write_file_atomic(target, std::string(100 << 10, 'x')); });
    // diagnostics.jsonl gains ~20 KB a step: the first file past the limit.
    err_log = error_of([&] { train_new(run, 30, quiet(1, 0)); });
  }
  EXPECT_EQ(err_whole, target + ": cannot write (File too large); check free disk space and that the folder is writable");
  EXPECT_EQ(read_file(target), "old");
  for (const auto& e : fs::directory_iterator(dir.path()))
    EXPECT_TRUE(e.path().filename() == "a.json" || e.path().filename() == "run") << e.path();
  EXPECT_EQ(err_log, (run / mm::kDiagnosticsFile).string() +
                         ": cannot write (File too large); check free disk space and that the folder is writable");
}

// Issue 16 item 12: temp files a kill left behind (ours, and the NAME.tmp.PID of older versions)
// are removed by the next writer of the folder; other files stay.
TEST(RunFolder, LeftoverTempFilesAreRemovedByTheNextWriter) {
  TempDir dir;
  const fs::path run = dir / "run";
  train_new(run, 10, quiet(0, 0, true));
  const std::vector<fs::path> leftovers = {run / "model.safetensors.tmp.4242", run / "config.json.tmp.0123456789abcdef",
                                           run / mm::kFiguresDir / "loss.svg.tmp.99"};
  for (const auto& p : leftovers) write_file(p, "half");
  write_file(run / "notes.tmp.txt", "mine");
  mm::Run::resume(run.string(), 12, quiet(0, 0));
  for (const auto& p : leftovers) EXPECT_FALSE(fs::exists(p)) << p;
  EXPECT_TRUE(fs::exists(run / "notes.tmp.txt"));
  write_file(leftovers[0], "half");
  mm::Run::create(run.string(), small_config(5), made_up_words(), "test", true, quiet(0, 0));
  EXPECT_FALSE(fs::exists(leftovers[0]));
}

namespace {

// lecture-original without its tanh: lr 1e6 blows the two linear layers up within 3 steps.
json diverging_json() {
  json j = mm::load_preset("lecture-original").to_json();
  json layers = json::array();
  for (const auto& l : j["model"]["layers"])
    if (l["type"] != "tanh") layers.push_back(l);
  j["model"]["layers"] = layers;
  j["train"]["lr"] = 1e6;
  return j;
}

mm::RunResult train_config(const fs::path& dir, const json& j, int64_t steps, int64_t save_every, bool overwrite = true) {
  json c = j;
  c["train"]["steps"] = steps;
  return mm::Run::create(dir.string(), mm::parse_config(c, "test.json"), made_up_words(), "test.json", overwrite,
                         quiet(0, save_every))
      .train();
}

}  // namespace

// A new run in a folder replaces the finished run's files before anything can fail: its result,
// checkpoint, report and figures go (a file of the user's in figures/ stays), so a run that then
// diverges does not pass for the old one. A resume removes the report too (drawn again at the end).
TEST(RunLife, ANewRunClearsTheOldRunsResultsFirst) {
  TempDir dir;
  const fs::path run = dir / "run";
  train_new(run, 20, quiet(0, 0, true));
  ASSERT_TRUE(fs::exists(run / mm::kReportFile));
  ASSERT_TRUE(fs::exists(run / mm::kFiguresDir / "loss.svg"));
  write_file(run / mm::kFiguresDir / "notes.txt", "mine");
  const mm::RunResult r = train_config(run, diverging_json(), 50, 0, false);
  EXPECT_NE(r.divergence.find("diverged"), std::string::npos);
  for (const char* f : {mm::kResultFile, mm::kCheckpointFile, mm::kReportFile}) EXPECT_FALSE(fs::exists(run / f)) << f;
  EXPECT_FALSE(fs::exists(run / mm::kFiguresDir / "loss.svg"));
  EXPECT_TRUE(fs::exists(run / mm::kFiguresDir / "notes.txt"));
  EXPECT_NE(error_of([&] { mm::Run::open(run.string()); }).find("model.safetensors"), std::string::npos);

  train_new(run, 20, quiet(0, 0, true));
  ASSERT_TRUE(fs::exists(run / mm::kReportFile));
  mm::Run::resume(run.string(), 30, quiet(0, 0));
  EXPECT_FALSE(fs::exists(run / mm::kReportFile));
}

// Divergence, the ways it can come: the update of the last step overflows (no later step sees
// it: the probe after the loop does); a periodic save of parameters whose next loss overflows is
// skipped (the last good save is kept); a resume that diverges keeps the run it continued.
TEST(RunLife, DivergenceIsCaughtAndTheLastGoodModelKept) {
  TempDir dir;
  json wd = mm::load_preset("lecture-kaiming").to_json();  // weights x ~-1e5 each step
  wd["train"]["optimizer"] = json{{"type", "sgd"}, {"weight_decay", 1e6}};
  mm::RunResult r = train_config(dir / "last", wd, 4, 0);
  EXPECT_NE(r.divergence.find("diverged at step 4"), std::string::npos) << r.divergence;
  EXPECT_FALSE(fs::exists(dir / "last" / mm::kCheckpointFile));
  EXPECT_FALSE(fs::exists(dir / "last" / mm::kResultFile));
  r = train_config(dir / "saves", wd, 10, 2);
  EXPECT_NE(r.divergence.find("diverged at step 4"), std::string::npos) << r.divergence;
  EXPECT_NE(r.divergence.find("the model of step 2 is kept"), std::string::npos) << r.divergence;
  EXPECT_EQ(r.json["steps"], 2);
  EXPECT_TRUE(std::isfinite(mm::Run::open((dir / "saves").string()).evaluate().val));

  r = train_config(dir / "every", diverging_json(), 50, 1);
  EXPECT_NE(r.divergence.find("diverged at step 2"), std::string::npos) << r.divergence;
  EXPECT_NE(r.divergence.find("the model of step 1 is kept in " + (dir / "every").string() + "/model.safetensors"),
            std::string::npos)
      << r.divergence;
  EXPECT_EQ(r.json["steps"], 1);
  EXPECT_NE(read_file(mm::write_report({(dir / "every").string(), "", 3, false}).html_path).find("diverged at step"),
            std::string::npos);

  json at20 = diverging_json();
  at20["train"]["lr"] = json{{"values", {1e-4, 1e6}}, {"boundaries", {20}}};
  const mm::RunResult ok = train_config(dir / "resumed", at20, 20, 0);
  ASSERT_TRUE(ok.divergence.empty()) << ok.divergence;
  const std::string model_before = read_file(dir / "resumed" / mm::kCheckpointFile);
  r = mm::Run::resume((dir / "resumed").string(), 50, quiet(0, 0)).train();
  EXPECT_NE(r.divergence.find("start a new run with a lower learning rate"), std::string::npos) << r.divergence;
  EXPECT_NE(r.divergence.find("the model of step 20"), std::string::npos) << r.divergence;
  EXPECT_EQ(read_file(dir / "resumed" / mm::kCheckpointFile), model_before);
  EXPECT_EQ(r.json["diverged"], true);
  for (const char* k : {"train_loss", "val_loss", "test_loss", "steps"}) EXPECT_EQ(r.json[k], ok.json[k]) << k;
}

// What resume checks before it touches the folder, and what it notes.
TEST(RunLife, ResumeRefusesWhatItCannotContinueAndNotesACutLog) {
  TempDir dir;
  const fs::path run = dir / "run";
  train_new(run, 40, quiet(0, 0));
  const std::string d = run.string(), model = read_file(run / mm::kCheckpointFile), result = read_file(run / mm::kResultFile);
  const std::string words = read_file(run / mm::kWordsFile);
  fs::remove(run / mm::kWordsFile);
  EXPECT_EQ(error_of([&] { mm::Run::resume(d, 80); }),
            d + "/words.txt: missing from the run folder (the word list it was trained on); retrain it with `makemore train -o " +
                d + "`");
  write_file(run / mm::kWordsFile, words);
  write_file(run / mm::kTrainStateFile, "garbage");
  EXPECT_NE(error_of([&] { mm::Run::resume(d, 80); }).find(d + "/train_state.safetensors"), std::string::npos);
  EXPECT_EQ(read_file(run / mm::kResultFile), result);
  fs::remove(run / mm::kTrainStateFile);
  EXPECT_EQ(error_of([&] { mm::Run::resume(d, 80); }),
            d +
                "/train_state.safetensors: missing, so the run cannot be continued exactly; train it again with `makemore "
                "train -o " +
                d + "`");
  EXPECT_EQ(read_file(run / mm::kCheckpointFile), model);
  EXPECT_NE(error_of([&] { mm::Run::resume((dir / "nowhere").string(), 80); }).find("no such run folder"), std::string::npos);
  EXPECT_FALSE(fs::exists(dir / "nowhere"));

  // A loss log cut short (an edit, a copy): the continuation says where the gap is.
  train_new(run, 40, quiet(0, 0));
  std::string first10;
  std::ifstream in(run / mm::kMetricsFile);
  std::string line;
  for (int k = 0; k < 10 && std::getline(in, line);)  // the first 10 steps' records (and step 0's val_loss)
    if (first10 += line + "\n"; line.find("\"loss\"") != std::string::npos) ++k;
  write_file(run / mm::kMetricsFile, first10);
  std::vector<std::string> notes;
  mm::RunSettings s = quiet(0, 0);
  s.note = [&](const std::string& n) { notes.push_back(n); };
  mm::Run::resume(d, 60, s).train();
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_EQ(notes[0], d + "/metrics.jsonl holds the losses of 10 of the 40 steps done (the file was cut or edited); the loss "
                          "curve and the loss log will have a gap there");
  EXPECT_EQ(mm::Run::open(d).losses().size(), 30u);
}

// Killed between writing the train state and the checkpoint: the state (which holds the
// parameters) is newer than the checkpoint, and the run continues from the state.
TEST(RunLife, StateNewerThanCheckpointContinuesFromTheState) {
  TempDir dir;
  const std::string d = (dir / "run").string();
  train_new(dir / "run", 30, quiet(0, 0));
  const std::string older = read_file(dir / "run" / mm::kCheckpointFile);
  mm::Run::resume(d, 60, quiet(0, 0)).train();
  write_file(dir / "run" / mm::kCheckpointFile, older);  // the checkpoint of step 30, the state of step 60
  mm::Run run = mm::Run::resume(d, 80, quiet(0, 0));
  EXPECT_EQ(run.step(), 60);
  run.train();
  train_new(dir / "straight", 80, quiet(0, 0));
  for (const char* f : {mm::kCheckpointFile, mm::kMetricsFile})
    EXPECT_TRUE(read_file(dir / "run" / f) == read_file(dir / "straight" / f)) << f;
}

// A 0-step run reads the network as initialized: its inspect.json is the doctor's view of that
// network (the lecture's confidently wrong start), not an empty "healthy" report.
TEST(RunLife, ZeroStepRunInspectsTheInitialization) {
  TempDir dir;
  json j = mm::load_preset("lecture-original").to_json();
  j["train"]["steps"] = 0;
  const mm::RunResult r =
      mm::Run::create((dir / "s0").string(), mm::parse_config(j, "x"), made_up_words(), "x", false, quiet(1000, 0)).train();
  const json inspect = json::parse(read_file(dir / "s0" / mm::kInspectFile));
  EXPECT_FALSE(inspect.at("healthy").get<bool>());
  EXPECT_FLOAT_EQ(inspect.at("initial_loss").get<float>(), r.json.at("initial_loss").get<float>());
  EXPECT_GT(inspect.at("layers").size(), 0u);
  bool overconfident = false;
  for (const auto& f : inspect.at("findings")) overconfident |= f.at("id") == "overconfident-output";
  EXPECT_TRUE(overconfident) << inspect.at("findings").dump();
}

// ---- the validation curve (train --eval-every) --------------------------------------------

namespace {

mm::RunSettings evaluating(int64_t eval_every, int64_t diag_every = 0, int64_t save_every = 0) {
  mm::RunSettings s = quiet(diag_every, save_every);
  s.eval_every = eval_every;
  return s;
}

}  // namespace

// The curve evaluates a copy of the model: the training's losses, minibatches, BatchNorm running
// statistics, diagnostics (which read the cached activations) and final model are those of a run
// without it, byte for byte; its records sit at step 0, every N steps and the last, and the last
// is result.json's val_loss (the same model, evaluated by the run's own model afterwards, in
// other chunks).
TEST(RunValidation, CurveIsRecordedWithoutTouchingTheTraining) {
  TempDir dir;
  const mm::RunResult no = train_new(dir / "off", 60, evaluating(0, 20));
  const mm::RunResult on = train_new(dir / "on", 60, evaluating(25, 20));
  EXPECT_EQ(no.json["val_curve_seconds"], 0.0);  // its time, part of the loop's
  EXPECT_GT(on.json["val_curve_seconds"].get<double>(), 0.0);
  EXPECT_LT(on.json["val_curve_seconds"].get<double>(), on.json["seconds"].get<double>());
  for (const char* f : {mm::kCheckpointFile, mm::kDiagnosticsFile, mm::kUpdateRatioFile, mm::kInspectFile})
    EXPECT_TRUE(read_file(dir / "on" / f) == read_file(dir / "off" / f)) << f << " differs";
  const mm::MetricsColumns off = mm::read_metrics((dir / "off" / mm::kMetricsFile).string());
  const mm::MetricsColumns m = mm::read_metrics((dir / "on" / mm::kMetricsFile).string());
  EXPECT_TRUE(off.val_step.empty());
  EXPECT_EQ(m.step, off.step);
  EXPECT_EQ(m.loss, off.loss);
  EXPECT_EQ(m.lr, off.lr);
  ASSERT_EQ(m.val_step, (std::vector<int64_t>{0, 25, 50, 60}));
  EXPECT_EQ(m.val_loss.back(), on.json["val_loss"].get<double>());  // the same evaluation
  // At step 0 the network guesses about uniformly (the lecture's -ln(1/V) start); it learns after.
  EXPECT_NEAR(m.val_loss[0], on.json["expected_initial_loss"].get<double>(), 0.3);
  EXPECT_LT(m.val_loss[3], m.val_loss[0]);
  // The other readers: the loss list skips the records, the run record draws them.
  EXPECT_EQ(mm::Run::open((dir / "on").string()).losses().size(), 60u);
  EXPECT_EQ(mm::Run::open((dir / "on").string()).metrics().val_loss, m.val_loss);
  EXPECT_EQ(mm::read_run_record((dir / "on").string()).val_losses.size(), 4u);
}

// A stopped run continued, and a finished one trained further, record each evaluation once, at
// the same steps and with the same values as a run never stopped (the records at or after the
// step it continues from are dropped and the one at that step evaluated again).
TEST(RunValidation, ResumedRunsRecordEachEvaluationOnce) {
  TempDir dir;
  train_new(dir / "straight", 80, evaluating(10));
  for (const int64_t stop_after : {24, 29}) {  // 25 steps done, then 30 (a multiple of 10)
    const fs::path run = dir / ("stopped" + std::to_string(stop_after));
    train_new(run, 80, evaluating(10), stop_after);
    mm::Run::resume(run.string()).train();  // records as it did: every 10, from its train state
    EXPECT_TRUE(read_file(run / mm::kMetricsFile) == read_file(dir / "straight" / mm::kMetricsFile)) << run;
  }
  train_new(dir / "further", 60, evaluating(10));
  mm::Run::resume((dir / "further").string(), 80).train();
  const mm::MetricsColumns m = mm::read_metrics((dir / "further" / mm::kMetricsFile).string());
  EXPECT_EQ(m.val_step, (std::vector<int64_t>{0, 10, 20, 30, 40, 50, 60, 70, 80}));
  EXPECT_TRUE(read_file(dir / "further" / mm::kMetricsFile) == read_file(dir / "straight" / mm::kMetricsFile));
}

// metrics.jsonl read back: both kinds of record (one line may hold both), null as NaN, and a
// line that is neither named with its number.
TEST(RunValidation, MetricsReaderKeepsTheTwoKindsApart) {
  TempDir dir;
  const fs::path p = dir / "metrics.jsonl";
  write_file(p,
             "{\"step\":0,\"val_loss\":3.3}\n{\"step\":0,\"loss\":3.2,\"lr\":0.1}\n{\"step\":1,\"loss\":null,\"lr\":0.1}\n"
             "{\"step\":2,\"val_loss\":null}\n{\"step\":2,\"loss\":2.5,\"lr\":0.1,\"val_loss\":2.6}\n");
  const mm::MetricsColumns m = mm::read_metrics(p.string());
  EXPECT_EQ(m.step, (std::vector<int64_t>{0, 1, 2}));
  ASSERT_EQ(m.loss.size(), 3u);
  EXPECT_TRUE(std::isnan(m.loss[1]));
  EXPECT_EQ(m.val_step, (std::vector<int64_t>{0, 2, 2}));
  ASSERT_EQ(m.val_loss.size(), 3u);
  EXPECT_EQ(m.val_loss[0], 3.3);
  EXPECT_TRUE(std::isnan(m.val_loss[1]));
  EXPECT_EQ(m.val_loss[2], 2.6);
  write_file(p, "{\"step\":0,\"loss\":3.2,\"lr\":0.1}\n{\"step\":1,\"val\":2}\n");
  EXPECT_EQ(
      error_of([&] { mm::read_metrics(p.string()); }),
      p.string() + ":2: not a metrics record ({\"step\", \"loss\", \"lr\"} or {\"step\", \"val_loss\"}); the file was damaged");
}
