// Tests of compare.h (several run folders on one page and as JSON): hand-made run folders in
// the writers' schema (diag_json.cpp, run.cpp), so every expected value below is an input of
// the test; the page is also rendered in headless Chromium when /usr/bin/chromium exists.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "makemore/compare.h"
#include "makemore/error.h"
#include "test_util.h"

namespace {

namespace fs = std::filesystem;
using mm_test::read_file;
using mm_test::TempDir;
using nlohmann::json;

void write_file(const fs::path& p, const std::string& text) { std::ofstream(p, std::ios::binary | std::ios::trunc) << text; }

json hist(double lo, double hi) { return {{"lo", lo}, {"hi", hi}, {"counts", {1, 4, 9, 4, 1}}}; }

json layer(int index, const std::string& type, double out_std, double sat, double grad_std) {
  return {{"index", index},  {"type", type},     {"out_mean", 0.0},      {"out_std", out_std},  {"saturated_pct", sat},
          {"dead_units", 0}, {"grad_mean", 0.0}, {"grad_std", grad_std}, {"hist", hist(-1, 1)}, {"grad_hist", hist(-0.01, 0.01)}};
}

struct RunSpec {
  std::string name;
  int vocab = 27;
  std::vector<json> layers;
  double train = 2.3, initial = 3.3;
  std::vector<std::string> findings;
  std::string bits;  // the saturation map, 2 x 5
  bool val_records = false;
};

// A finished run folder: config, result, metrics (with val records when asked), update ratios,
// one diagnostics snapshot at step 0, inspect.json with findings and a 2 x 5 saturation map.
void write_run(const fs::path& dir, const RunSpec& s) {
  fs::create_directories(dir);
  write_file(dir / "config.json", json{{"name", s.name}}.dump());
  write_file(dir / "result.json", json{{"train_loss", s.train},
                                       {"val_loss", s.train + 0.05},
                                       {"test_loss", s.train + 0.06},
                                       {"initial_loss", s.initial},
                                       {"expected_initial_loss", std::log(double(s.vocab))},
                                       {"vocab_size", s.vocab},
                                       {"params", 1000},
                                       {"steps", 100},
                                       {"preset", s.name}}
                                      .dump());
  std::string metrics;
  for (int k = 0; k < 100; ++k) {
    metrics += json{{"step", k}, {"loss", s.initial - k * 0.01}, {"lr", 0.1}}.dump() + "\n";
    if (s.val_records && k % 25 == 24) metrics += json{{"step", k}, {"val_loss", s.train + 0.1}}.dump() + "\n";
  }
  write_file(dir / "metrics.jsonl", metrics);
  write_file(dir / "update_ratio.jsonl", R"({"step": 0, "ratios": {"W": -3.0}})"
                                         "\n");
  const json snap{{"step", 0}, {"loss", s.initial}, {"layers", s.layers}, {"params", json::array()}};
  write_file(dir / "diagnostics.jsonl", snap.dump() + "\n");
  json ins = snap;
  ins["step"] = 99;
  ins["initial_loss"] = s.initial;
  ins["expected_loss"] = std::log(double(s.vocab));
  ins["findings"] = json::array();
  for (const auto& f : s.findings) ins["findings"].push_back({{"id", f}, {"layer", 1}, {"message", f + " <b>here</b>"}});
  ins["saturation_map"] = {{"layer", 1}, {"type", "Tanh"}, {"rows", 2}, {"cols", 5}, {"bits", s.bits}};
  write_file(dir / "inspect.json", ins.dump());
}

RunSpec original() {
  return {"original", 27, {layer(1, "Tanh", 0.92, 68.5, 0.041)}, 3.05, 27.88, {"overconfident-output"}, "1111011110", false};
}
RunSpec fixed() { return {"fix-tanh", 27, {layer(1, "Tanh", 0.63, 3.5, 3e-4)}, 2.36, 3.31, {}, "0000100000", true}; }
RunSpec deeper() {
  return {"deeper <30>",
          30,
          {layer(1, "Tanh", 0.7, 5, 1e-3), layer(2, "BatchNorm1d", 1.0, 0, 1e-3), layer(3, "Tanh", 0.6, 2, 1e-3)},
          2.2,
          3.4,
          {},
          "0000000001",
          false};
}

std::vector<mm::RunRecord> records(const TempDir& t, const std::vector<RunSpec>& specs) {
  std::vector<mm::RunRecord> out;
  for (const auto& s : specs) {
    write_run(t / s.name, s);
    out.push_back(mm::read_run_record((t / s.name).string()));
  }
  return out;
}

TEST(Compare, JsonHoldsEachRunsResultsLayersAndMaps) {
  TempDir t;
  const json j = mm::compare_json(records(t, {original(), fixed()}));
  EXPECT_EQ(j["comparable"], (json{{"vocabulary", true}, {"layers", true}}));
  EXPECT_TRUE(j["notes"].empty()) << j["notes"];
  ASSERT_EQ(j["runs"].size(), 2u);
  const json& a = j["runs"][0];
  EXPECT_EQ(a["label"], "original");
  EXPECT_EQ(a["vocab_size"], 27);
  EXPECT_DOUBLE_EQ(a["train_loss"].get<double>(), 3.05);
  EXPECT_DOUBLE_EQ(a["initial_loss"].get<double>(), 27.88);
  EXPECT_DOUBLE_EQ(a["expected_initial_loss"].get<double>(), std::log(27.0));
  EXPECT_EQ(a["findings"].size(), 1u);
  EXPECT_EQ(a["findings"][0]["id"], "overconfident-output");
  ASSERT_EQ(a["layers"].size(), 1u);
  EXPECT_DOUBLE_EQ(a["layers"][0]["saturated_pct"].get<double>(), 68.5);
  EXPECT_DOUBLE_EQ(a["layers"][0]["grad_std"].get<double>(), 0.041);
  EXPECT_DOUBLE_EQ(a["saturation_map"]["white_pct"].get<double>(), 80.0);  // 8 of 10 bits
  EXPECT_DOUBLE_EQ(j["runs"][1]["saturation_map"]["white_pct"].get<double>(), 10.0);
  EXPECT_EQ(a["loss_records"], 100);
  EXPECT_EQ(a["val_loss_records"], 0);
  EXPECT_EQ(j["runs"][1]["val_loss_records"], 4);
}

TEST(Compare, SaysWhereVocabulariesAndLayerStacksDiffer) {
  TempDir t;
  const auto runs = records(t, {original(), deeper()});
  const json j = mm::compare_json(runs);
  EXPECT_EQ(j["comparable"], (json{{"vocabulary", false}, {"layers", false}}));
  const auto notes = mm::compare_notes(runs);
  ASSERT_EQ(notes.size(), 2u);
  EXPECT_NE(notes[0].find("vocabularies differ (original 27, deeper <30> 30 characters)"), std::string::npos) << notes[0];
  EXPECT_NE(notes[1].find("layer stacks differ (original [Tanh], deeper <30> [Tanh BatchNorm1d Tanh])"), std::string::npos)
      << notes[1];
  // Both still compare where they can: results, losses, each run's own layers.
  EXPECT_EQ(j["runs"][1]["layers"].size(), 2u);  // the bounded ones: the two Tanh
  EXPECT_EQ(j["runs"][1]["vocab_size"], 30);
}

TEST(Compare, AnUnfinishedRunWithoutDiagnosticsStillCompares) {
  // No result.json, no inspect.json, no diagnostics: its vocabulary is unknown, which is not a
  // difference; its missing layers are one.
  TempDir t;
  auto runs = records(t, {original(), fixed()});
  for (const char* f : {"result.json", "inspect.json", "diagnostics.jsonl"}) fs::remove(t / "fix-tanh" / f);
  runs[1] = mm::read_run_record((t / "fix-tanh").string());
  const json j = mm::compare_json(runs);
  EXPECT_EQ(j["comparable"], (json{{"vocabulary", true}, {"layers", false}}));
  EXPECT_EQ(j["runs"][1]["vocab_size"], 0);
  EXPECT_TRUE(j["runs"][1]["train_loss"].is_null());
  const auto notes = mm::compare_notes(runs);
  ASSERT_EQ(notes.size(), 2u);
  EXPECT_NE(notes[1].find("fix-tanh has no diagnostics"), std::string::npos) << notes[1];
  const mm::CompareResult r =
      mm::write_compare({{(t / "original").string(), (t / "fix-tanh").string()}, (t / "c.html").string()});
  EXPECT_EQ(r.figures, (std::vector<std::string>{"loss", "activations_1", "gradients_1", "saturation_1"}));
}

TEST(Compare, RunsOfOneNameAreToldApartByFolder) {
  TempDir t;
  RunSpec b = original();
  write_run(t / "a", original());
  write_run(t / "b", b);
  const json j = mm::compare_json({mm::read_run_record((t / "a").string()), mm::read_run_record((t / "b").string())});
  EXPECT_EQ(j["runs"][0]["label"], "original (" + (t / "a").string() + ")");
  EXPECT_EQ(j["runs"][1]["label"], "original (" + (t / "b").string() + ")");
}

TEST(Compare, RefusesFewerThanTwoRunsAndFoldersThatAreNotRuns) {
  TempDir t;
  write_run(t / "a", original());
  EXPECT_THROW(mm::write_compare({{(t / "a").string()}, (t / "c.html").string()}), mm::Error);
  fs::create_directories(t / "empty");
  EXPECT_THROW(mm::write_compare({{(t / "a").string(), (t / "empty").string()}, (t / "c.html").string()}), mm::Error);
  EXPECT_FALSE(fs::exists(t / "c.html"));
}

const std::vector<std::string> k_figures_aligned = {
    "loss",        "layer_out_std", "layer_saturation", "layer_grad_std", "activations_1", "activations_2", "activations_3",
    "gradients_1", "gradients_2",   "gradients_3",      "saturation_1",   "saturation_2",  "saturation_3"};

TEST(Compare, PageHasEveryFigureAndNothingToFetch) {
  TempDir t;
  RunSpec third = fixed();
  third.name = "kaiming";
  for (const auto& s : {original(), fixed(), third}) write_run(t / s.name, s);
  const mm::CompareResult r = mm::write_compare(
      {{(t / "original").string(), (t / "fix-tanh").string(), (t / "kaiming").string()}, (t / "out" / "c.html").string()});
  EXPECT_EQ(r.figures, k_figures_aligned);
  const std::string html = read_file(t / "out" / "c.html");
  for (const auto& f : k_figures_aligned) EXPECT_NE(html.find("id=\"fig-" + f + "\""), std::string::npos) << f;
  for (const char* id : {"results", "loss", "layers", "saturation", "findings"})
    EXPECT_NE(html.find(std::string("<h2 id=\"") + id + "\""), std::string::npos) << id;
  EXPECT_EQ(html.find("http://"), std::string::npos);
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find(t.path().string()), std::string::npos);  // folders relative to the page
  EXPECT_NE(html.find("../original"), std::string::npos);
  EXPECT_NE(html.find("overconfident-output &lt;b&gt;here&lt;/b&gt;"), std::string::npos);
  EXPECT_NE(html.find(">fix-tanh: validation (whole split)<"), std::string::npos);  // its val records
  EXPECT_EQ(html.find(">original: validation"), std::string::npos);                 // none recorded
  EXPECT_NE(html.find("<td>27.8800</td>"), std::string::npos);                      // original's initial loss
  EXPECT_EQ(html.find("id=\"notes\""), std::string::npos);                          // nothing that does not compare
  // Different stacks: no aligned charts, each run's table, and the page says why.
  write_run(t / "deeper", deeper());
  mm::write_compare({{(t / "original").string(), (t / "deeper").string()}, (t / "d.html").string()});
  const std::string dh = read_file(t / "d.html");
  EXPECT_EQ(dh.find("id=\"fig-layer_out_std\""), std::string::npos);
  EXPECT_NE(dh.find("the layer stacks differ, so layers do not line up"), std::string::npos);
  EXPECT_NE(dh.find("id=\"notes\""), std::string::npos);
  EXPECT_NE(dh.find("id=\"fig-saturation_2\""), std::string::npos);
}

int sh(const std::string& cmd) {
  const int rc = std::system(cmd.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

TEST(Compare, CommandLineWritesThePageAndJson) {
  TempDir t;
  write_run(t / "a", original());
  write_run(t / "b", fixed());
  const std::string base = "cd " + t.path().string() + " && " + MM_BINARY + " compare a b";
  ASSERT_EQ(sh(base + " --html p.html --json > out.json 2> err.txt"), 0) << read_file(t / "err.txt");
  const json j = json::parse(read_file(t / "out.json"));
  EXPECT_EQ(j["runs"].size(), 2u);
  EXPECT_TRUE(fs::is_regular_file(t / "p.html"));
  ASSERT_EQ(sh(base + " > out.txt 2>&1"), 0);
  EXPECT_NE(read_file(t / "out.txt").find("compare.html (2 runs, "), std::string::npos) << read_file(t / "out.txt");
  EXPECT_NE(sh(base.substr(0, base.size() - 2) + " > /dev/null 2>&1"), 0);  // one folder only
  EXPECT_NE(sh(base + " nope > /dev/null 2> err2.txt"), 0);
  EXPECT_NE(read_file(t / "err2.txt").find("nope: not a run folder"), std::string::npos) << read_file(t / "err2.txt");
}

// The PNG's width and height from its IHDR chunk (0, 0 when it is not a PNG).
std::pair<int, int> png_size(const std::string& png) {
  if (png.size() < 24 || png.compare(0, 8, std::string("\x89PNG\r\n\x1a\n", 8)) != 0) return {0, 0};
  auto be32 = [&](std::size_t p) {
    return int((uint32_t(uint8_t(png[p])) << 24) | (uint32_t(uint8_t(png[p + 1])) << 16) | (uint32_t(uint8_t(png[p + 2])) << 8) |
               uint32_t(uint8_t(png[p + 3])));
  };
  return {be32(16), be32(20)};
}

TEST(Compare, RendersInHeadlessChromium) {
  const char* chromium = "/usr/bin/chromium";
  if (!fs::exists(chromium))
    GTEST_SKIP() << chromium << " is not installed (MM_WITH_CHROMIUM=1 ./scripts/setup.sh installs it); "
                 << "the comparison's browser rendering is not checked";
  TempDir t;
  RunSpec third = fixed();
  third.name = "kaiming";
  for (const auto& s : {original(), fixed(), third}) write_run(t / s.name, s);
  mm::write_compare({{(t / "original").string(), (t / "fix-tanh").string(), (t / "kaiming").string()}, (t / "c.html").string()});
  const std::string flags =
      std::string("timeout 120 ") + chromium +
      " --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking"
      " --disable-component-update --disable-sync --disable-dev-shm-usage --hide-scrollbars --user-data-dir=" +
      (t / "profile").string() + " --enable-logging=stderr --v=0 ";
  const std::string page = " file://" + (t / "c.html").string();
  ASSERT_EQ(sh(flags + "--dump-dom" + page + " > " + (t / "dom.html").string() + " 2> " + (t / "log").string()), 0)
      << read_file(t / "log");
  const std::string dom = read_file(t / "dom.html");
  for (const auto& f : k_figures_aligned) EXPECT_NE(dom.find("id=\"fig-" + f + "\""), std::string::npos) << f;
  EXPECT_EQ(read_file(t / "log").find("CONSOLE"), std::string::npos) << read_file(t / "log");
  // And a screenshot: the page draws to a bitmap of the window's size.
  ASSERT_EQ(sh(flags + "--window-size=1500,2600 --screenshot=" + (t / "shot.png").string() + page + " > /dev/null 2>&1"), 0);
  EXPECT_EQ(png_size(read_file(t / "shot.png")), std::make_pair(1500, 2600));
}

}  // namespace
