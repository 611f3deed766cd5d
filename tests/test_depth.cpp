// Tests of `makemore study depth` (depth.h): the grid and each cell's config JSON (parsed for
// the axes this build has; checked as text in the agreed format for layernorm / residual /
// adam, which other branches add), the initializations' weight scales, the "trained"
// classification and unigram entropy, option validation, a tiny end-to-end study with
// resume, and the command's one-line errors for bad options.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "makemore/config.h"
#include "makemore/depth.h"
#include "makemore/diag.h"
#include "makemore/error.h"
#include "makemore/layer_kinds.h"
#include "makemore/model.h"
#include "makemore/page.h"
#include "makemore/rng.h"
#include "test_util.h"

namespace {

using mm_test::read_file;
using mm_test::TempDir;

namespace fs = std::filesystem;
using nlohmann::json;
using namespace mm::depth;

Cell make_cell(int depth, const std::string& init, const std::string& norm, bool residual, const std::string& opt) {
  Cell c;
  c.depth = depth;
  c.init = init;
  c.norm = norm;
  c.residual = residual;
  c.optimizer = opt;
  c.seed = 2147483647ULL;
  return c;
}

// ---- the grid ---------------------------------------------------------------------------------

TEST(DepthGrid, CellCountsKeysAndOrder) {
  const Grid q = quick_grid();
  const auto cells = build_cells(q);
  EXPECT_EQ(cells.size(), q.depths.size() * 4u * 3u * 2u * 2u * static_cast<std::size_t>(q.seeds));
  std::set<std::string> keys;
  for (const auto& c : cells) keys.insert(c.key());
  EXPECT_EQ(keys.size(), cells.size());
  EXPECT_EQ(cells.front().depth, 10);  // deepest first
  EXPECT_EQ(cells.front().key(), "d10-normal-none-plain-sgd-s0");

  const Grid f = full_grid();
  const auto full = build_cells(f);
  EXPECT_EQ(full.size(), 5u * 4u * 3u * 2u * 2u * 2u);
  EXPECT_EQ(full.back().seed_index, 1);
  EXPECT_EQ(full.back().seed, f.seed + 1);
  EXPECT_EQ(full.front().depth, 50);

  Grid g;
  g.depths = {2};
  g.inits = {"kaiming", "normal"};
  g.norms = {"none"};
  g.residual = {false};
  g.optimizers = {"sgd"};
  g.seeds = 3;
  EXPECT_EQ(build_cells(g).size(), 6u);
}

TEST(DepthGrid, CellConfigsParseForTheAvailableAxes) {
  Grid g;
  for (int depth : {1, 3, 10})
    for (const auto& init : kInits)
      for (const std::string norm : {"none", "batch"}) {
        const Cell c = make_cell(depth, init, norm, false, "sgd");
        const json j = cell_config_json(c, g);
        mm::Config cfg;
        ASSERT_NO_THROW(cfg = mm::parse_config(j, "test")) << j.dump();
        const std::size_t per = norm == "none" ? 2 : 3;
        ASSERT_EQ(cfg.layers.size(), per * static_cast<std::size_t>(depth) + 1);
        for (int b = 0; b < depth; ++b) {
          const auto& lin = cfg.layers[per * static_cast<std::size_t>(b)];
          EXPECT_EQ(lin.kind, mm::find_layer_kind("linear"));
          EXPECT_EQ(lin.out, 64);
          EXPECT_EQ(lin.bias, norm == "none");  // a bias before a norm layer is wasted
          if (norm == "batch") {
            EXPECT_EQ(cfg.layers[per * b + 1].kind, mm::find_layer_kind("batchnorm1d"));
          }
          EXPECT_EQ(cfg.layers[per * b + per - 1].kind, mm::find_layer_kind("tanh"));
        }
        EXPECT_TRUE(cfg.layers.back().out_is_vocab);
        EXPECT_EQ(cfg.n_embd, 10);
        EXPECT_EQ(cfg.block_size, 3);
        EXPECT_EQ(cfg.steps, g.steps);
        EXPECT_EQ(cfg.optimizer.kind, mm::OptimizerKind::Sgd);
        ASSERT_EQ(cfg.lr.values.size(), 2u);
        EXPECT_DOUBLE_EQ(cfg.lr.values[0], 0.1);
        EXPECT_DOUBLE_EQ(cfg.lr.values[1], 0.1 * 0.1);
        EXPECT_EQ(cfg.lr.boundaries, std::vector<int64_t>{750});
        // And it builds: the stack has one Tanh per hidden layer.
        mm::Model m(cfg, 27);
        int tanhs = 0;
        for (const auto& l : m.stack().layers()) tanhs += dynamic_cast<const mm::Tanh*>(l.get()) ? 1 : 0;
        EXPECT_EQ(tanhs, depth);
      }
}

// Weight std of the stack's Linear layers after init, in order.
std::vector<double> linear_weight_stds(const Grid& g, const std::string& init) {
  const mm::Config cfg = mm::parse_config(cell_config_json(make_cell(3, init, "none", false, "sgd"), g), "test");
  mm::Model m(cfg, 27);
  mm::TorchGenerator gen(1234);
  m.init(gen);
  std::vector<double> out;
  const auto& ps = m.params();
  for (std::size_t id = 0; id < ps.infos().size(); ++id) {
    const auto& p = ps.info(static_cast<int>(id));
    if (p.name.rfind("layers.", 0) == 0 && !p.is_1d && p.name.ends_with(".weight"))
      out.push_back(mm::moments(ps.data(static_cast<int>(id)), p.size()).std);
  }
  return out;
}

TEST(DepthGrid, InitializationsGiveTheirWeightScales) {
  Grid g;
  g.width = 200;  // enough values for a 5% check on the std
  // Hidden Linear(200, 200): normal 1, kaiming (5/3)/sqrt(200), small a tenth of it, no gain
  // 1/sqrt(200); the first layer has fan_in 30; the output layer is the same init x 0.1.
  struct Case {
    std::string init;
    double hidden, first;
  };
  const double k = (5.0 / 3.0) / std::sqrt(200.0), k30 = (5.0 / 3.0) / std::sqrt(30.0);
  for (const Case& c : {Case{"normal", 1.0, 1.0}, Case{"kaiming", k, k30}, Case{"small", 0.1 * k, 0.1 * k30},
                        Case{"kaiming-nogain", 1 / std::sqrt(200.0), 1 / std::sqrt(30.0)}}) {
    SCOPED_TRACE(c.init);
    const auto s = linear_weight_stds(g, c.init);
    ASSERT_EQ(s.size(), 4u);
    EXPECT_NEAR(s[0], c.first, 0.05 * c.first);
    EXPECT_NEAR(s[1], c.hidden, 0.05 * c.hidden);
    EXPECT_NEAR(s[2], c.hidden, 0.05 * c.hidden);
    EXPECT_NEAR(s[3], 0.1 * c.hidden, 0.1 * 0.1 * c.hidden);
  }
}

// layernorm / residual / adam come from other branches: the JSON must be exactly the agreed
// format. Until they are merged parse_config rejects them with a message naming the field.
TEST(DepthGrid, MergedFeaturesUseTheAgreedFormat) {
  Grid g;
  const json j = cell_config_json(make_cell(3, "kaiming", "layer", true, "adam"), g);
  const json& layers = j["model"]["layers"];
  ASSERT_EQ(layers.size(), 3u + 2u + 1u);  // first block, two residual blocks, output
  EXPECT_EQ(layers[0], json::parse(R"({"type":"linear","out":64,"bias":false,"weight_init":{"kind":"kaiming","gain":"tanh"}})"));
  EXPECT_EQ(layers[1], json::parse(R"({"type":"layernorm"})"));
  EXPECT_EQ(layers[2], json::parse(R"({"type":"tanh"})"));
  const json block = json::parse(R"({"type":"residual","layers":[
      {"type":"linear","out":64,"bias":false,"weight_init":{"kind":"kaiming","gain":"tanh"}},
      {"type":"layernorm"},{"type":"tanh"}]})");
  EXPECT_EQ(layers[3], block);
  EXPECT_EQ(layers[4], block);
  EXPECT_EQ(
      layers[5],
      json::parse(R"({"type":"linear","out":"vocab","bias":true,"weight_init":{"kind":"kaiming","gain":"tanh","scale":0.1}})"));
  EXPECT_EQ(j["train"]["optimizer"], "adam");
  EXPECT_EQ(j["train"]["lr"], json::parse(R"({"values":[0.003,0.00030000000000000003],"boundaries":[750]})"));
  // The other inits, as agreed.
  EXPECT_EQ(cell_config_json(make_cell(2, "normal", "none", false, "sgd"), g)["model"]["layers"][0]["weight_init"],
            json::parse(R"({"kind":"normal"})"));
  EXPECT_EQ(cell_config_json(make_cell(2, "kaiming-nogain", "none", false, "sgd"), g)["model"]["layers"][0]["weight_init"],
            json::parse(R"({"kind":"kaiming","gain":"linear"})"));
  EXPECT_EQ(cell_config_json(make_cell(2, "small", "none", false, "sgd"), g)["model"]["layers"][0]["weight_init"],
            json::parse(R"({"kind":"kaiming","gain":"tanh","scale":0.1})"));
  // Batch norm inside a residual block; SGD with residual.
  const json b = cell_config_json(make_cell(2, "kaiming", "batch", true, "sgd"), g);
  EXPECT_EQ(b["model"]["layers"][3]["layers"][1], json::parse(R"({"type":"batchnorm1d"})"));
  try {
    mm::parse_config(j, "cell");
  } catch (const mm::Error& e) {
    const std::string m = e.what();
    EXPECT_TRUE(m.find("layernorm") != std::string::npos || m.find("residual") != std::string::npos ||
                m.find("adam") != std::string::npos)
        << m;
  }
}

// ---- classification ---------------------------------------------------------------------------

TEST(DepthClassify, UnigramEntropy) {
  mm::Examples ex;
  ex.y = {0, 0, 1, 1};
  EXPECT_NEAR(unigram_entropy(ex, 5), std::log(2.0), 1e-12);
  ex.y = {0, 1, 2, 3};
  EXPECT_NEAR(unigram_entropy(ex, 4), std::log(4.0), 1e-12);
  ex.y = {3, 3, 3};
  EXPECT_NEAR(unigram_entropy(ex, 4), 0.0, 1e-12);
  ex.y = {0, 0, 0, 1};  // -(3/4 ln 3/4 + 1/4 ln 1/4)
  EXPECT_NEAR(unigram_entropy(ex, 2), -(0.75 * std::log(0.75) + 0.25 * std::log(0.25)), 1e-12);
}

TEST(DepthClassify, TrainedStuckDiverged) {
  const double h = 2.82;
  EXPECT_EQ(classify(false, 2.3, h), Status::Trained);
  EXPECT_EQ(classify(false, h - kTrainedMargin - 1e-6, h), Status::Trained);
  EXPECT_EQ(classify(false, h - kTrainedMargin + 1e-6, h), Status::Stuck);
  EXPECT_EQ(classify(false, 3.3, h), Status::Stuck);
  EXPECT_EQ(classify(true, 2.0, h), Status::Diverged);
  EXPECT_EQ(classify(false, NAN, h), Status::Diverged);
  EXPECT_EQ(classify(false, INFINITY, h), Status::Diverged);
  EXPECT_EQ(classify(false, 2.5, h, 0.5), Status::Stuck);
  EXPECT_STREQ(status_name(Status::Trained), "trained");
  EXPECT_STREQ(status_name(Status::Failed), "failed");
}

// ---- validation -------------------------------------------------------------------------------

void expect_invalid(const Grid& g, const std::string& option, const std::string& part) {
  try {
    validate(g);
    ADD_FAILURE() << "accepted; expected an error about " << option;
  } catch (const mm::Error& e) {
    const std::string m = e.what();
    EXPECT_EQ(m.rfind(option + ":", 0), 0u) << m;
    EXPECT_NE(m.find(part), std::string::npos) << m;
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
  }
}

TEST(DepthValidate, BadValuesNameTheOption) {
  EXPECT_NO_THROW(validate(quick_grid()));
  EXPECT_NO_THROW(validate(full_grid()));
  Grid g;
  g.depths = {0};
  expect_invalid(g, "--depths", "1 to 50");
  g.depths = {51};
  expect_invalid(g, "--depths", "1 to 50");
  g.depths = {3, 3};
  expect_invalid(g, "--depths", "twice");
  g.depths = {};
  expect_invalid(g, "--depths", "empty");
  g = Grid{};
  g.inits = {"kaiming", "xavier"};
  expect_invalid(g, "--inits", "'xavier'");
  g = Grid{};
  g.norms = {"group"};
  expect_invalid(g, "--norms", "none, batch, layer");
  g = Grid{};
  g.optimizers = {"rmsprop"};
  expect_invalid(g, "--optimizers", "sgd, adam");
  g = Grid{};
  g.residual = {true, true};
  expect_invalid(g, "--residual", "off");
  g = Grid{};
  g.seeds = 0;
  expect_invalid(g, "--seeds", "1 to 100");
  g = Grid{};
  g.steps = 0;
  expect_invalid(g, "--steps", "at least 1");
  g = Grid{};
  g.width = 0;
  expect_invalid(g, "--width", "1 to 4096");
  g = Grid{};
  g.adam_lr = -1;
  expect_invalid(g, "--adam-lr", "positive");
}

// ---- a tiny study, end to end -----------------------------------------------------------------

// 400 made-up names from a fixed LCG, so the test needs no data file.
std::string write_words(const fs::path& dir) {
  static const char* syl[] = {"ka", "lo", "mi", "ra", "en", "is", "ta", "no", "bel", "dor", "fi", "ja", "ve", "zo", "han", "ce"};
  uint64_t state = 99;
  auto next = [&state](uint64_t bound) {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (state >> 33) % bound;
  };
  std::string text;
  for (int i = 0; i < 400; ++i) {
    const uint64_t parts = 1 + next(3);
    for (uint64_t k = 0; k < parts; ++k) text += syl[next(16)];
    text += "\n";
  }
  const fs::path p = dir / "words.txt";
  std::ofstream(p) << text;
  return p.string();
}

TEST(DepthStudy, TinyStudyWritesEverythingAndResumes) {
  TempDir dir;
  Options opt;
  opt.input = write_words(dir.path());
  opt.out_dir = (dir.path() / "study").string();
  opt.jobs = 2;
  Grid& g = opt.grid;
  g.depths = {2};
  g.inits = {"kaiming", "normal"};
  g.norms = {"none", "batch", "layer"};
  g.residual = {false};
  g.optimizers = {"sgd"};
  g.steps = 50;
  g.width = 16;
  int calls = 0, reused_calls = 0;
  const StudyOutput out = run_depth_study(opt, [&](int done, int total, const json&, bool reused) {
    ++calls;
    reused_calls += reused ? 1 : 0;
    EXPECT_EQ(total, 6);
    EXPECT_LE(done, total);
  });
  EXPECT_EQ(calls, 6);
  EXPECT_EQ(reused_calls, 0);
  EXPECT_EQ(out.total, 6);

  const json study = json::parse(read_file(fs::path(opt.out_dir) / "study.json"));
  EXPECT_EQ(study["study"], "depth");
  ASSERT_EQ(study["cells"].size(), 6u);
  const double h = study["unigram_entropy"].get<double>();
  EXPECT_GT(h, 1.0);
  EXPECT_LT(h, std::log(27.0));
  int finished = 0;
  for (const auto& c : study["cells"]) {
    SCOPED_TRACE(c.dump());
    const std::string st = c["status"];
    if (st != "failed") {
      EXPECT_FALSE(mm_test::store_file(fs::path(opt.out_dir) / "runs", c["key"]).empty());
    }
    if (c["norm"] == "layer" && st == "failed") {  // until layernorm is merged
      EXPECT_NE(c["error"].get<std::string>().find("layernorm"), std::string::npos);
      continue;
    }
    ASSERT_NE(st, "failed");
    ++finished;
    ASSERT_TRUE(c["val_loss"].is_number());
    EXPECT_EQ(st, status_name(classify(false, c["val_loss"].get<double>(), h)));
    // At init: two hidden blocks (Tanh outputs) with their statistics, three Linear weights.
    const json& b = c["at_init"]["blocks"];
    ASSERT_EQ(b.size(), 2u);
    for (const auto& blk : b) {
      EXPECT_EQ(blk["type"], "Tanh");
      EXPECT_GT(blk["act_std"].get<double>(), 0.0);
      EXPECT_LE(blk["act_std"].get<double>(), 1.0);
      EXPECT_GT(blk["grad_std"].get<double>(), 0.0);
      EXPECT_GE(blk["saturated_pct"].get<double>(), 0.0);
    }
    EXPECT_EQ(c["at_init"]["weights"].size(), 3u);
    EXPECT_TRUE(c["at_init"]["weights"].back()["output_layer"].get<bool>());
    // Raw N(0,1) saturates the tanh far more than Kaiming without a norm layer.
    if (c["norm"] == "none" && c["init"] == "normal") {
      EXPECT_GT(b[1]["saturated_pct"].get<double>(), 40.0);
    }
    if (c["norm"] == "none" && c["init"] == "kaiming") {
      EXPECT_LT(b[1]["saturated_pct"].get<double>(), 25.0);
    }
  }
  EXPECT_GE(finished, 4);
  EXPECT_EQ(study["summary"].size(), 3u);

  // Figures: one heatmap per (norm, residual, optimizer), activation/gradient curves, the page.
  const fs::path figs = fs::path(opt.out_dir) / "figures";
  for (const char* f : {"heatmap_none_plain_sgd.svg", "heatmap_batch_plain_sgd.svg", "heatmap_layer_plain_sgd.svg",
                        "act_std_none_plain.svg", "grad_std_none_plain.svg", "act_std_batch_plain.svg"}) {
    SCOPED_TRACE(f);
    const std::string svg = read_file(figs / f);
    ASSERT_FALSE(svg.empty());
    EXPECT_EQ(svg.rfind("<svg xmlns=\"http://www.w3.org/2000/svg\"", 0), 0u);
    EXPECT_EQ(svg.substr(svg.size() - 6), "</svg>");
    EXPECT_EQ(svg.find("nan"), std::string::npos);
    EXPECT_NE(svg.find(">kaiming"), std::string::npos);
    EXPECT_NE(svg.find(">normal"), std::string::npos);
  }
  // Under BatchNorm the inits give one curve: the legend says the last one drawn covers the other.
  EXPECT_NE(read_file(figs / "act_std_batch_plain.svg").find(": the same curve)<"), std::string::npos);
  EXPECT_EQ(read_file(figs / "act_std_none_plain.svg").find("the same curve"), std::string::npos);
  // The activation std axis starts at 0: the normalized cells' stds of ~0.6 at every layer
  // draw level, not zoomed into a zigzag.
  EXPECT_NE(read_file(figs / "act_std_batch_plain.svg").find("text-anchor=\"end\">0.0</text>"), std::string::npos);
  const std::string html = read_file(fs::path(opt.out_dir) / "study.html");
  EXPECT_NE(html.find("</html>"), std::string::npos);
  EXPECT_NE(html.find(mm::page::stylesheet()), std::string::npos);  // the pages' one stylesheet
  EXPECT_NE(html.find("heatmap_batch_plain_sgd.svg"), std::string::npos);
  EXPECT_NE(html.find("act_std_none_plain.svg"), std::string::npos);
  EXPECT_NE(out.table.find("trained: val loss <"), std::string::npos);

  // Rerun: finished cells are kept, untouched; only failed ones train again.
  const fs::path kept = mm_test::store_file(fs::path(opt.out_dir) / "runs", "d2-kaiming-none-plain-sgd-s0");
  ASSERT_FALSE(kept.empty());
  const std::string before = read_file(kept);
  reused_calls = 0;
  const StudyOutput again = run_depth_study(opt, [&](int, int, const json&, bool reused) { reused_calls += reused ? 1 : 0; });
  EXPECT_EQ(again.reused, finished);
  EXPECT_EQ(reused_calls, finished);
  EXPECT_EQ(read_file(kept), before);
  EXPECT_EQ(again.study["cells"].size(), 6u);

  // The same words under another path: still kept. Other words: nothing kept.
  fs::copy_file(opt.input, dir.path() / "copy.txt");
  opt.input = (dir.path() / "copy.txt").string();
  EXPECT_EQ(run_depth_study(opt, nullptr).reused, finished);
  std::ofstream(dir.path() / "other.txt") << "anna\nbob\ncarla\ndoug\nemma\nfrank\ngina\nhugo\nivy\njon\n";
  opt.input = (dir.path() / "other.txt").string();
  EXPECT_EQ(run_depth_study(opt, nullptr).reused, 0);
  opt.input = (dir.path() / "copy.txt").string();

  // A different budget is a different cell: nothing kept. --no-resume: nothing kept either.
  opt.grid.steps = 51;
  EXPECT_EQ(run_depth_study(opt, nullptr).reused, 0);
  opt.resume = false;
  EXPECT_EQ(run_depth_study(opt, nullptr).reused, 0);
}

// Four cells of a few steps: depths 10 and 3 (given in that order), residual off and on.
StudyOutput small_residual_study(const TempDir& dir, Options& opt) {
  opt.input = write_words(dir.path());
  opt.out_dir = (dir.path() / "study").string();
  opt.jobs = 2;
  Grid& g = opt.grid;
  g.depths = {10, 3};
  g.inits = {"kaiming"};
  g.norms = {"none"};
  g.residual = {false, true};
  g.optimizers = {"sgd"};
  g.steps = 5;
  g.width = 8;
  return run_depth_study(opt, nullptr);
}

// The first cell of each row of the study page's "Every cell" table.
std::vector<std::string> every_cell_column(const std::string& html, std::size_t column) {
  std::vector<std::string> out;
  std::size_t p = html.find("<h2>Every cell</h2>");
  for (p = html.find("<tr class=", p); p != std::string::npos; p = html.find("<tr class=", p + 1)) {
    std::size_t c = p;
    for (std::size_t k = 0; k <= column; ++k) c = html.find("<td", c + 1);
    c = html.find('>', c) + 1;
    out.push_back(html.substr(c, html.find("</td>", c) - c));
  }
  return out;
}

TEST(DepthStudy, RowsAreInNumericDepthOrder) {
  // Cells train deepest first; the tables, study.json and the summary read 3 before 10.
  TempDir dir;
  Options opt;
  const StudyOutput out = small_residual_study(dir, opt);
  const std::string html = read_file(fs::path(opt.out_dir) / "study.html");
  EXPECT_EQ(every_cell_column(html, 0), (std::vector<std::string>{"3", "3", "10", "10"}));
  EXPECT_EQ(every_cell_column(html, 3), (std::vector<std::string>{"off", "on", "off", "on"}));  // then the grid's order
  std::vector<int> cells, summary;
  for (const auto& c : out.study["cells"]) cells.push_back(c["depth"].get<int>());
  EXPECT_EQ(cells, (std::vector<int>{3, 3, 10, 10}));
  for (const auto& r : out.study["summary"][0]["depths"]) summary.push_back(r["depth"].get<int>());
  EXPECT_EQ(summary, (std::vector<int>{3, 10}));
  // The text table: one row per group, depth first on each line.
  std::vector<int> table;
  std::istringstream in(out.table);
  for (std::string line; std::getline(in, line);) {
    int d = 0;
    if (line.find(" kaiming ") != std::string::npos && std::istringstream(line) >> d) table.push_back(d);
  }
  EXPECT_EQ(table, (std::vector<int>{3, 3, 10, 10})) << out.table;
  EXPECT_LT(out.table.find("d3:"), out.table.find("d10:"));
}

TEST(DepthStudy, SaturationIsShownForTanhOutputsOnly) {
  // A residual block's output x + f(x) is not bounded by 1: its share beyond 0.97 (up to 74%
  // in the quick grid) is not saturation, and the tables showed it as if it were.
  TempDir dir;
  Options opt;
  const StudyOutput out = small_residual_study(dir, opt);
  for (const auto& c : out.study["cells"]) {
    SCOPED_TRACE(c["key"].get<std::string>());
    ASSERT_NE(c["status"], "failed") << c.value("error", "");
    const json& b = c["at_init"]["blocks"];
    ASSERT_EQ(b.size(), std::size_t(c["depth"].get<int>()));
    for (std::size_t k = 0; k < b.size(); ++k) {
      const bool tanh = !c["residual"].get<bool>() || k == 0;  // the first block is never residual
      EXPECT_EQ(b[k]["type"], tanh ? "Tanh" : "Residual");
      EXPECT_EQ(b[k]["saturated_pct"].is_number(), tanh) << b[k].dump();
    }
  }
  // study.html: column 11 is "saturated % last"; its explanation says why some are n/a.
  const std::string html = read_file(fs::path(opt.out_dir) / "study.html");
  const auto residual = every_cell_column(html, 3), sat = every_cell_column(html, 11);
  ASSERT_EQ(sat.size(), 4u);
  for (std::size_t r = 0; r < sat.size(); ++r) {
    SCOPED_TRACE(r);
    if (residual[r] == "on")
      EXPECT_EQ(sat[r], "n/a");
    else
      EXPECT_NE(sat[r].find_first_of("0123456789"), std::string::npos) << sat[r];
  }
  EXPECT_NE(html.find("n/a for a residual block: x + f(x) is not bounded"), std::string::npos);
  // The text table: "n/a" in the rows with residual on, a number in the others.
  std::istringstream in(out.table);
  int rows = 0;
  for (std::string line; std::getline(in, line);) {
    if (line.find(" kaiming ") == std::string::npos) continue;
    ++rows;
    const bool res = line.find(" on ") != std::string::npos;
    EXPECT_EQ(line.find(" n/a ") != std::string::npos, res) << line;
  }
  EXPECT_EQ(rows, 4);
  EXPECT_NE(out.table.find("n/a when that block is residual"), std::string::npos);
}

// ---- the command ------------------------------------------------------------------------------

struct CmdResult {
  int code = -1;
  std::string err;
};

CmdResult run_cmd(const fs::path& dir, const std::string& args) {
  const std::string cmd = "cd '" + dir.string() + "' && '" + MM_BINARY + "' " + args + " >out.txt 2>err.txt";
  const int st = std::system(cmd.c_str());
  CmdResult r;
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  r.err = read_file(dir / "err.txt");
  return r;
}

TEST(DepthCli, BadOptionsGiveOneLineErrors) {
  TempDir dir;
  struct Case {
    std::string args, part;
  };
  for (const Case& c :
       {Case{"--depths 0", "--depths: 0 is out of range"}, Case{"--depths 3,x", "--depths: 'x' is not a number"},
        Case{"--depths 60", "1 to 50"}, Case{"--inits kaiming,xavier", "--inits: unknown value 'xavier'"},
        Case{"--norms group", "--norms: unknown value 'group'"}, Case{"--residual maybe", "--residual: unknown value"},
        Case{"--optimizers rmsprop", "--optimizers"}, Case{"--seeds 0", "--seeds"}, Case{"--steps 0", "--steps"},
        Case{"--jobs -1", "--jobs"}, Case{"--jobs 1000", "--jobs"},
        Case{"--adam-lr 2000000", "--adam-lr: 2000000 is out of range"}, Case{"--sgd-lr 0", "--sgd-lr"},
        Case{"--width -3", "--width"}, Case{"--depths ''", "--depths: empty"}, Case{"--norms ''", "--norms: empty"}}) {
    SCOPED_TRACE(c.args);
    const CmdResult r = run_cmd(dir.path(), "study depth -i nowhere.txt -o out " + c.args);
    EXPECT_NE(r.code, 0);
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_EQ(r.err.rfind("makemore: error: ", 0), 0u) << r.err;
    EXPECT_NE(r.err.find(c.part), std::string::npos) << r.err;
  }
  // Options are checked before any data is read or folder made.
  EXPECT_FALSE(fs::exists(dir.path() / "out"));
  // --jobs 0 is one training per core, as in study init and fidelity: past the options, the
  // missing word list is the error.
  const CmdResult j0 = run_cmd(dir.path(), "study depth -i nowhere.txt -o out --jobs 0");
  EXPECT_NE(j0.code, 0);
  EXPECT_NE(j0.err.find("nowhere.txt"), std::string::npos) << j0.err;
  EXPECT_EQ(j0.err.find("--jobs"), std::string::npos) << j0.err;
  const CmdResult h = run_cmd(dir.path(), "study depth --help");
  EXPECT_EQ(h.code, 0);
  EXPECT_NE(read_file(dir.path() / "out.txt").find("--residual"), std::string::npos);
}

}  // namespace
