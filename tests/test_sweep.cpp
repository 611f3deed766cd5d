// The sweep study (sweep.h): axes parsed and applied to the config's fields, every value checked
// before anything trains, the plan's cells and seeds, the shards' slices, the outputs, and a
// job array's shards plus a merge giving the same study as one process.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "makemore/cluster.h"
#include "makemore/error.h"
#include "makemore/presets.h"
#include "makemore/sweep.h"
#include "test_util.h"

namespace {

namespace fs = std::filesystem;
using mm_test::read_file;
using mm_test::TempDir;
using nlohmann::json;
using namespace mm::sweep;

// A tiny network and word list: a sweep of a dozen trainings runs in a second or two.
json tiny_base() {
  return json::parse(R"({"model": {"n_embd": 4, "layers": [
      {"type": "linear", "out": 8, "weight_init": {"kind": "kaiming", "gain": "tanh"}},
      {"type": "tanh"},
      {"type": "linear", "out": "vocab", "weight_init": {"kind": "normal", "scale": 0.1}}]},
    "train": {"steps": 30, "batch_size": 8, "lr": 0.1}})");
}

std::string write_words(const TempDir& dir) {
  const char* syl[] = {"ka", "lo", "mi", "ra", "en", "is", "ta", "no"};
  std::ofstream f(dir / "words.txt");
  for (int i = 0; i < 200; ++i) f << syl[i % 8] << syl[(i * 5 + 3) % 8] << (i % 3 ? syl[i % 7] : "") << "\n";
  return (dir / "words.txt").string();
}

Spec tiny_spec(std::vector<std::string> grids, int seeds = 2) {
  Spec s;
  s.base = mm::parse_config(tiny_base(), "tiny").to_json();
  s.base_name = "tiny";
  for (const auto& g : grids) s.axes.push_back(parse_axis(g));
  s.seeds = seeds;
  return s;
}

// The message of the UsageError f throws ("" when none).
template <class F>
std::string usage_error(F f) {
  try {
    f();
  } catch (const mm::UsageError& e) {
    return e.what();
  }
  return "";
}

TEST(Sweep, AxisValuesAreJsonWhenTheyAreJsonAndTextOtherwise) {
  const Axis a = parse_axis("train.lr=0.1, [0.2,0.02] ,adam,true");
  EXPECT_EQ(a.field, "train.lr");
  ASSERT_EQ(a.values.size(), 4u);
  EXPECT_EQ(a.values[0], json(0.1));
  EXPECT_EQ(a.values[1], json::parse("[0.2,0.02]"));  // a comma inside brackets does not split
  EXPECT_EQ(a.values[2], json("adam"));
  EXPECT_EQ(a.values[3], json(true));
  EXPECT_EQ(a.texts[1], "[0.2,0.02]");
  for (const char* bad : {"train.lr", "=1,2", "train.lr=1,,2", "train.lr=1,1", "train.seed=1,2"})
    EXPECT_NE(usage_error([&] { parse_axis(bad); }), "") << bad;
  EXPECT_NE(usage_error([] { parse_axis("train.seed=1,2"); }).find("--seeds"), std::string::npos);
}

TEST(Sweep, SetFieldFollowsTheParsersPaths) {
  json j = tiny_base();
  set_field(j, "model.layers[0].weight_init.gain", 1.5);
  EXPECT_EQ(j["model"]["layers"][0]["weight_init"]["gain"], json(1.5));
  set_field(j, "train.clip_grad_norm", 1.0);  // a key the base does not spell is created
  EXPECT_EQ(j["train"]["clip_grad_norm"], json(1.0));
  j["train"]["optimizer"] = "sgd";
  set_field(j, "train.optimizer.momentum", 0.9);  // a name stands for {"type": name}
  EXPECT_EQ(j["train"]["optimizer"], json::parse(R"({"type": "sgd", "momentum": 0.9})"));
  EXPECT_THROW(set_field(j, "model.layers[7].out", 3), mm::Error);
  EXPECT_THROW(set_field(j, "model.layers[x].out", 3), mm::Error);
  EXPECT_THROW(set_field(j, "model.n_embd.size", 3), mm::Error);
  EXPECT_THROW(set_field(j, "model..n_embd", 3), mm::Error);
}

TEST(Sweep, PlanIsEveryCombinationTimesTheSeeds) {
  const Plan p = make_plan(tiny_spec({"train.lr=0.05,0.1,0.2", "model.n_embd=3,5"}, 2));
  ASSERT_EQ(p.cells.size(), 6u);
  ASSERT_EQ(p.jobs.size(), 12u);
  EXPECT_EQ(p.cell_label(1), "train.lr=0.05 model.n_embd=5");  // the last axis fastest
  EXPECT_EQ(p.cells[1].config.n_embd, 5);
  EXPECT_DOUBLE_EQ(p.cells[4].config.lr.at(0, 30), 0.2);
  EXPECT_EQ(p.jobs[3].config.seed, p.jobs[2].config.seed + 1);  // seed index 1 of cell 1
  EXPECT_EQ(p.jobs[3].config.n_embd, 5);
  // A bigger network costs more.
  EXPECT_GT(p.job_cost(2), p.job_cost(0));
}

TEST(Sweep, EveryValueIsCheckedBeforeAnythingTrainsAndTheErrorNamesIt) {
  const std::string e = usage_error([] { make_plan(tiny_spec({"train.lr=0.1", "model.n_embd=4,0"})); });
  EXPECT_NE(e.find("--grid model.n_embd=0"), std::string::npos) << e;
  EXPECT_NE(e.find("model.n_embd: must be"), std::string::npos) << e;  // the parser's own message
  EXPECT_EQ(e.find('\n'), std::string::npos);
  const std::string u = usage_error([] { make_plan(tiny_spec({"train.optimizer=sgd,adamx"})); });
  EXPECT_NE(u.find("adamx"), std::string::npos) << u;
  const std::string f = usage_error([] { make_plan(tiny_spec({"model.layers[9].out=3"})); });
  EXPECT_NE(f.find("model.layers[9]"), std::string::npos) << f;
  const std::string k = usage_error([] { make_plan(tiny_spec({"train.stpes=3"})); });
  EXPECT_NE(k.find("unknown field"), std::string::npos) << k;
  const std::string p = usage_error([] { make_plan(tiny_spec({"preset=lecture-kaiming,nope"})); });
  EXPECT_NE(p.find("--grid preset=nope"), std::string::npos) << p;
}

TEST(Sweep, PresetAxisReplacesTheBase) {
  Spec s = tiny_spec({"preset=lecture-kaiming,lecture-batchnorm", "train.steps=5"}, 1);
  const Plan p = make_plan(s);
  ASSERT_EQ(p.cells.size(), 2u);
  EXPECT_EQ(p.cells[0].config.layers.size(), mm::load_preset("lecture-kaiming").layers.size());
  EXPECT_EQ(p.cells[1].config.layers.size(), mm::load_preset("lecture-batchnorm").layers.size());
  EXPECT_EQ(p.cells[1].config.steps, 5);
}

TEST(Sweep, ShardsAreDisjointAndCoverEveryJob) {
  EXPECT_EQ(parse_shard("2/3").k, 2);
  for (const char* bad : {"0/3", "4/3", "1/0", "1", "a/b", "1/3x", "/3"})
    EXPECT_NE(usage_error([&] { parse_shard(bad); }), "") << bad;
  std::multiset<std::size_t> all;
  for (int k = 1; k <= 3; ++k)
    for (std::size_t j : shard_jobs(10, Shard{k, 3})) all.insert(j);
  EXPECT_EQ(all.size(), 10u);
  EXPECT_EQ(std::set<std::size_t>(all.begin(), all.end()).size(), 10u);
  EXPECT_EQ(shard_jobs(10, Shard{}).size(), 10u);
}

// study.json without its timing fields; results.csv without its two timing columns.
json untimed(json j) {
  if (j.is_object()) {
    for (const char* k : {"seconds", "steps_per_sec", "train_seconds", "eval_seconds"}) j.erase(k);
    for (auto& [k, v] : j.items()) v = untimed(v);
  } else if (j.is_array()) {
    for (auto& v : j) v = untimed(v);
  }
  return j;
}
std::string untimed_csv(const std::string& csv) {
  std::string out, line;
  std::istringstream in(csv);
  while (std::getline(in, line)) out += line.substr(0, line.rfind(',', line.rfind(',') - 1)) + "\n";
  return out;
}
// Every file of the store, without timings, by name.
std::map<std::string, json> store_files(const fs::path& dir) {
  std::map<std::string, json> m;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".json") m[e.path().filename()] = untimed(json::parse(read_file(e.path())));
  return m;
}

TEST(Sweep, OutputsHoldEveryTrainingAndAChartPerAxisAndPair) {
  TempDir dir("mm_sweep");
  Options o;
  o.spec = tiny_spec({"train.lr=0.05,0.2", "model.n_embd=3,5"}, 2);
  o.input = write_words(dir);
  o.out_dir = (dir / "st").string();
  const Result r = run_sweep(o, {});
  EXPECT_EQ(r.trained, 8);
  EXPECT_EQ(r.failed, 0);
  const json s = json::parse(read_file(dir / "st" / "study.json"));
  ASSERT_EQ(s["cells"].size(), 4u);
  EXPECT_EQ(s["cells"][3]["values"], json::parse(R"(["0.2", "5"])"));
  EXPECT_EQ(s["cells"][0]["runs"].size(), 2u);
  EXPECT_EQ(s["cells"][0]["val_loss"]["n"], 2);
  const std::string csv = read_file(dir / "st" / "results.csv");
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 9);  // header + 8 trainings
  EXPECT_EQ(csv.substr(0, csv.find('\n')),
            "train.lr,model.n_embd,seed_index,seed,status,initial_loss,train_loss,val_loss,test_loss,diverged,diverged_step,"
            "steps_per_sec,seconds");
  EXPECT_NE(r.table.find(" ± "), std::string::npos);
  const std::string html = read_file(dir / "st" / "study.html");
  EXPECT_NE(html.find("<style>"), std::string::npos);  // the shared page
  EXPECT_TRUE(fs::exists(dir / "st" / "figures" / "pair_train_lr__model_n_embd.svg"));
  EXPECT_TRUE(fs::exists(dir / "st" / "figures" / "axis_train_lr.svg"));
  EXPECT_NE(html.find("pair_train_lr__model_n_embd"), std::string::npos);
  // Numeric axes are drawn as lines: val loss against the axis, and one line per value of the
  // other axis of a pair; a pair with no numeric axis (none here) only has its heatmap.
  const std::string lr_line = read_file(dir / "st" / "figures" / "axis_train_lr.svg");
  EXPECT_NE(lr_line.find("<path"), std::string::npos);
  EXPECT_NE(lr_line.find(">train.lr<"), std::string::npos);  // 0.05 to 0.2: a linear x axis
  const std::string pair_lines = read_file(dir / "st" / "figures" / "lines_train_lr__by__model_n_embd.svg");
  EXPECT_NE(pair_lines.find("model.n_embd=3"), std::string::npos);
  EXPECT_NE(pair_lines.find("model.n_embd=5"), std::string::npos);
  // A rerun trains nothing and writes the same study.
  const Result again = run_sweep(o, {});
  EXPECT_EQ(again.trained, 0);
  EXPECT_EQ(again.reused, 8);
  EXPECT_EQ(untimed(again.study), untimed(s));
}

TEST(Sweep, TextAxesAreBarsAndWideNumericAxesAreOnALogScale) {
  TempDir dir("mm_sweep");
  Options o;
  o.spec = tiny_spec({"train.lr=0.01,0.3", "train.optimizer=sgd,adam"}, 1);
  o.input = write_words(dir);
  o.out_dir = (dir / "st").string();
  run_sweep(o, {});
  const fs::path figs = dir / "st" / "figures";
  const std::string lr = read_file(figs / "axis_train_lr.svg"), opt = read_file(figs / "axis_train_optimizer.svg");
  EXPECT_NE(lr.find(">log10 train.lr<"), std::string::npos);  // 0.01 to 0.3: 30x apart
  EXPECT_NE(lr.find("<path"), std::string::npos);             // a line
  EXPECT_EQ(opt.find("<path"), std::string::npos);            // bars
  EXPECT_TRUE(fs::exists(figs / "lines_train_lr__by__train_optimizer.svg"));
  EXPECT_FALSE(fs::exists(figs / "lines_train_optimizer__by__train_lr.svg"));
  EXPECT_TRUE(fs::exists(figs / "pair_train_lr__train_optimizer.svg"));
}

TEST(Sweep, ShardsThenMergeEqualOneProcessByteForByte) {
  TempDir dir("mm_sweep");
  Options o;
  o.spec = tiny_spec({"train.lr=0.05,0.2,0.4", "model.layers[0].out=6,10"}, 2);
  o.input = write_words(dir);
  o.out_dir = (dir / "one").string();
  run_sweep(o, {});
  Options sh = o;
  sh.out_dir = (dir / "sharded").string();
  sh.jobs = 2;
  int trained = 0;
  for (int k = 1; k <= 3; ++k) {
    sh.shard = Shard{k, 3};
    const Result r = run_sweep(sh, {});
    EXPECT_TRUE(r.study.is_null());  // a shard writes no outputs
    trained += r.trained;
  }
  EXPECT_EQ(trained, 12);
  EXPECT_FALSE(fs::exists(dir / "sharded" / "study.json"));
  sh.shard = Shard{};
  const Result merged = run_sweep(sh, {});
  EXPECT_EQ(merged.trained, 0);
  for (const char* f : {"study.json"})
    EXPECT_EQ(untimed(json::parse(read_file(dir / "one" / f))).dump(1),
              untimed(json::parse(read_file(dir / "sharded" / f))).dump(1));
  EXPECT_EQ(untimed_csv(read_file(dir / "one" / "results.csv")), untimed_csv(read_file(dir / "sharded" / "results.csv")));
  EXPECT_EQ(store_files(dir / "one" / "runs"), store_files(dir / "sharded" / "runs"));
}

TEST(Sweep, ShardsShareTheStoreAndAWholeStudyIsRefusedBesideThem) {
  TempDir dir("mm_sweep");
  const std::string store = (dir / "st" / "runs").string();
  {
    const auto a = mm::study::Store::open(store, /*shared=*/true);
    const auto b = mm::study::Store::open(store, /*shared=*/true);  // two shards at once
    EXPECT_THROW(mm::study::Store::open(store), mm::Error);         // a whole study is not
  }
  const auto whole = mm::study::Store::open(store);
  Options o;
  o.spec = tiny_spec({"train.lr=0.1"}, 1);
  o.input = write_words(dir);
  o.out_dir = (dir / "st").string();
  try {
    run_sweep(o, {});
    ADD_FAILURE() << "a second writer was let in";
  } catch (const mm::Error& e) {
    EXPECT_NE(std::string(e.what()).find("another makemore process"), std::string::npos) << e.what();
  }
  o.shard = Shard{1, 2};
  EXPECT_THROW(run_sweep(o, {}), mm::Error);  // nor a shard beside a whole study
}

}  // namespace

// ---- the command: launches --------------------------------------------------------------------

namespace cli {

struct Ran {
  int code = -1;
  std::string out, err;
};

// `makemore ARGS` in `dir` (prefix: a launcher such as mpirun, and its options).
Ran run(const fs::path& dir, const std::string& args, const std::string& prefix = "") {
  const std::string cmd = "cd '" + dir.string() + "' && " + prefix + " '" + MM_BINARY + "' " + args + " > out.txt 2> err.txt";
  const int st = std::system(cmd.c_str());
  Ran r;
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  r.out = read_file(dir / "out.txt");
  r.err = read_file(dir / "err.txt");
  return r;
}

void write_text(const fs::path& p, const std::string& text) { std::ofstream(p) << text; }

}  // namespace cli

TEST(SweepCli, BadAxisValueIsOneLineAndExitTwoBeforeTraining) {
  TempDir dir("mm_sweep");
  write_words(dir);
  cli::write_text(dir / "tiny.json", tiny_base().dump());
  const cli::Ran r = cli::run(dir.path(), "study sweep --config tiny.json -i words.txt -o st --grid train.lr=0.1,-1");
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find("--grid train.lr=-1: train.lr"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir / "st" / "runs"));  // nothing trained, no store made
  const cli::Ran s = cli::run(dir.path(), "study sweep --config tiny.json -i words.txt -o st --shard 4/3");
  EXPECT_EQ(s.code, 2) << s.err;
  EXPECT_NE(s.err.find("--shard 4/3"), std::string::npos) << s.err;
}

TEST(SweepCli, SweepPrintsTheTableAndWritesTheStudy) {
  TempDir dir("mm_sweep");
  write_words(dir);
  cli::write_text(dir / "tiny.json", tiny_base().dump());
  const cli::Ran r = cli::run(dir.path(),
                              "study sweep --config tiny.json -i words.txt -o st --grid train.optimizer=sgd,adam "
                              "--grid train.lr=0.01,0.1 --seeds 2 -j 2");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("train.optimizer  train.lr"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("8 trainings: 8 ran now"), std::string::npos) << r.out;
  for (const char* f : {"study.json", "results.csv", "study.html"}) EXPECT_TRUE(fs::exists(dir / "st" / f)) << f;
}

// Skips a test that needs an MPI build and an mpirun to launch it (CI's build has both).
#define NEED_MPIRUN()                                                                    \
  if (!mm::cluster::mpi_built()) GTEST_SKIP() << "built without MPI (-DMM_WITH_MPI=ON)"; \
  if (std::system("command -v mpirun > /dev/null") != 0) GTEST_SKIP() << "no mpirun"

namespace {
// The study DIR/one (one process) and DIR/mpi (under mpirun) hold the same results, timings aside.
void expect_same_study(const TempDir& dir) {
  EXPECT_EQ(untimed(json::parse(read_file(dir / "one" / "study.json"))).dump(1),
            untimed(json::parse(read_file(dir / "mpi" / "study.json"))).dump(1));
}
}  // namespace

// The same sweep under `mpirun -np 3` (rank 0 coordinating, ranks 1 and 2 training) as with -j 1.
TEST(SweepCli, MpiRanksGiveTheSameStudyAsOneProcess) {
  NEED_MPIRUN();
  TempDir dir("mm_sweep");
  write_words(dir);
  json base = tiny_base();
  base["train"]["steps"] = 15;
  cli::write_text(dir / "tiny.json", base.dump());
  // 5 x 5 x 2 cells x 6 seeds = 300 short trainings.
  const std::string grid =
      "study sweep --config tiny.json -i words.txt --seeds 6 --grid train.lr=0.02,0.05,0.1,0.2,0.4 "
      "--grid model.layers[0].out=4,6,8,10,12 --grid train.batch_size=4,8 ";
  const cli::Ran one = cli::run(dir.path(), grid + "-j 1 -o one");
  ASSERT_EQ(one.code, 0) << one.err;
  const cli::Ran mpi = cli::run(dir.path(), grid + "-o mpi", "mpirun --allow-run-as-root --oversubscribe -np 3");
  ASSERT_EQ(mpi.code, 0) << mpi.err;
  EXPECT_NE(mpi.err.find("on 3 MPI ranks"), std::string::npos) << mpi.err;
  expect_same_study(dir);
  EXPECT_EQ(untimed_csv(read_file(dir / "one" / "results.csv")), untimed_csv(read_file(dir / "mpi" / "results.csv")));
  EXPECT_EQ(store_files(dir / "one" / "runs"), store_files(dir / "mpi" / "runs"));
  EXPECT_EQ(store_files(dir / "one" / "runs").size(), 300u);
}

// study depth runs on the same engine as a sweep: under mpirun its cells are trained across the
// ranks (before, every rank ran the whole study and all but one were refused the store's lock).
TEST(SweepCli, MpiDepthStudyEqualsOneProcess) {
  NEED_MPIRUN();
  TempDir dir("mm_sweep");
  write_words(dir);
  const std::string grid =
      "study depth --depths 1,2 --width 8 --steps 20 --inits kaiming,normal --norms none --residual off "
      "--optimizers sgd,adam --seeds 2 -i words.txt -j 1 ";
  const cli::Ran one = cli::run(dir.path(), grid + "-o one");
  ASSERT_EQ(one.code, 0) << one.err;
  const cli::Ran mpi = cli::run(dir.path(), grid + "-o mpi", "timeout 120 mpirun --allow-run-as-root --oversubscribe -np 3");
  ASSERT_EQ(mpi.code, 0) << mpi.err;
  const std::string head = "study depth: 16 cells";
  EXPECT_EQ(mpi.err.find(head), mpi.err.rfind(head)) << mpi.err;  // said once, by rank 0
  expect_same_study(dir);
  EXPECT_EQ(store_files(dir / "one" / "runs"), store_files(dir / "mpi" / "runs"));
  EXPECT_EQ(store_files(dir / "one" / "runs").size(), 16u);
}

// study init under mpirun: its trainings are spread over the ranks, the same bits as -j 1.
TEST(SweepCli, MpiInitStudyEqualsOneProcess) {
  NEED_MPIRUN();
  TempDir dir("mm_sweep");
  write_words(dir);
  const std::string study = "study init --steps 20 --seeds 2 -i words.txt -j 1 ";
  const cli::Ran one = cli::run(dir.path(), study + "-o one");
  ASSERT_EQ(one.code, 0) << one.err;
  const cli::Ran mpi = cli::run(dir.path(), study + "-o mpi", "timeout 120 mpirun --allow-run-as-root --oversubscribe -np 3");
  ASSERT_EQ(mpi.code, 0) << mpi.err;
  EXPECT_NE(mpi.out.find("on 3 MPI ranks"), std::string::npos) << mpi.out;
  const std::string head = "study init: 5 variants";
  EXPECT_EQ(mpi.out.find(head), mpi.out.rfind(head)) << mpi.out;  // said once, by rank 0
  expect_same_study(dir);
  EXPECT_EQ(store_files(dir / "one" / "runs"), store_files(dir / "mpi" / "runs"));
  EXPECT_EQ(store_files(dir / "one" / "runs").size(), 10u);
}

// From 8 ranks on rank 0 only coordinates: the study still ends, with every training stored.
TEST(SweepCli, MpiEightRanksCoordinatorOnly) {
  NEED_MPIRUN();
  TempDir dir("mm_sweep");
  write_words(dir);
  cli::write_text(dir / "tiny.json", tiny_base().dump());
  const cli::Ran r =
      cli::run(dir.path(), "study sweep --config tiny.json -i words.txt --seeds 2 --grid train.lr=0.05,0.1,0.2 -o st",
               "timeout 120 mpirun --allow-run-as-root --oversubscribe -np 8");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("on 8 MPI ranks"), std::string::npos) << r.err;
  EXPECT_EQ(mm_test::store_size(dir / "st" / "runs"), 6u);
  EXPECT_TRUE(fs::exists(dir / "st" / "study.json"));
}

TEST(SweepCli, LaunchedAsRanksWithoutMpiBuiltSaysSoOnce) {
  if (mm::cluster::mpi_built()) GTEST_SKIP() << "built with MPI: the ranks take part";
  TempDir dir("mm_sweep");
  write_words(dir);
  const cli::Ran r0 =
      cli::run(dir.path(), "study sweep -i words.txt -o st --steps 1", "OMPI_COMM_WORLD_SIZE=3 OMPI_COMM_WORLD_RANK=0");
  EXPECT_EQ(r0.code, 1);
  EXPECT_EQ(std::count(r0.err.begin(), r0.err.end(), '\n'), 1) << r0.err;
  EXPECT_NE(r0.err.find("built without MPI"), std::string::npos) << r0.err;
  EXPECT_FALSE(fs::exists(dir / "st"));
  const cli::Ran r1 = cli::run(dir.path(), "study sweep -i words.txt -o st --steps 1", "PMI_SIZE=3 PMI_RANK=1");
  EXPECT_EQ(r1.err, "");  // another rank: silent
  EXPECT_FALSE(fs::exists(dir / "st"));
}

namespace {

// The pid of the process of MPI rank `rank` running in `dir` (0: none found).
pid_t rank_pid(const fs::path& dir, int rank) {
  const std::string want = "OMPI_COMM_WORLD_RANK=" + std::to_string(rank);
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/proc", ec)) {
    const std::string name = e.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    if (fs::read_symlink(e.path() / "cwd", ec) != dir) continue;
    std::string env = read_file(e.path() / "environ");
    std::replace(env.begin(), env.end(), '\0', '\n');
    if (("\n" + env).find("\n" + want + "\n") != std::string::npos) return static_cast<pid_t>(std::stol(name));
  }
  return 0;
}

}  // namespace

// A rank killed mid-run: one line names it and the jobs in flight, nothing finished is lost, and
// the rerun trains only what is missing, giving the study of an uninterrupted run.
TEST(SweepCli, MpiRankKilledThenRerunGivesTheSameStudy) {
  NEED_MPIRUN();
  TempDir dir("mm_sweep");
  write_words(dir);
  json base = tiny_base();
  base["train"]["steps"] = 40000;  // about 0.2 s a training
  cli::write_text(dir / "tiny.json", base.dump());
  const std::string grid = "study sweep --config tiny.json -i words.txt --seeds 4 --grid train.lr=0.02,0.05,0.1,0.2 ";
  const cli::Ran one = cli::run(dir.path(), grid + "-j 1 -o one");
  ASSERT_EQ(one.code, 0) << one.err;

  const std::string mpirun = "mpirun --allow-run-as-root --oversubscribe -np 3";
  const pid_t launcher = fork();
  ASSERT_GE(launcher, 0);
  if (launcher == 0) {
    const std::string cmd =
        "cd '" + dir.path().string() + "' && exec " + mpirun + " '" + MM_BINARY + "' " + grid + "-o mpi > out.txt 2> err.txt";
    execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  pid_t victim = 0;
  for (int i = 0; i < 3000 && !victim; ++i) {  // the second finished training, then rank 2
    usleep(10000);
    if (fs::exists(dir / "mpi" / "runs") && mm_test::store_size(dir / "mpi" / "runs") >= 2) victim = rank_pid(dir.path(), 2);
  }
  ASSERT_NE(victim, 0) << read_file(dir / "err.txt");
  kill(victim, SIGKILL);
  int st = 0;
  waitpid(launcher, &st, 0);
  const std::string err = read_file(dir / "err.txt");
  EXPECT_FALSE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << err;
  const std::string named = "makemore: rank 2 (pid " + std::to_string(victim) + ") ended while training train.lr=";
  EXPECT_NE(err.find(named), std::string::npos) << err;
  int ours = 0;  // one line of ours (mpirun adds its own notice)
  for (std::size_t p = err.find("makemore: "); p != std::string::npos; p = err.find("makemore: ", p + 1)) ++ours;
  EXPECT_EQ(ours, 1) << err;
  const std::size_t kept = mm_test::store_size(dir / "mpi" / "runs");
  EXPECT_GE(kept, 2u);
  EXPECT_LT(kept, 16u);

  const cli::Ran again = cli::run(dir.path(), grid + "-j 1 -o mpi");
  ASSERT_EQ(again.code, 0) << again.err;
  EXPECT_NE(again.err.find(fmt::format("{} kept in mpi/runs/, {} to train", kept, 16 - kept)), std::string::npos) << again.err;
  expect_same_study(dir);
  EXPECT_EQ(untimed_csv(read_file(dir / "one" / "results.csv")), untimed_csv(read_file(dir / "mpi" / "results.csv")));
}
