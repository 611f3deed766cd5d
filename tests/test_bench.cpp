// The bench's library side (bench.h): which networks it times, and that the depth-study cell it
// ships (bench/configs/depth-cell.json) is the network `study depth` trains, so its row measures
// what a study runs. The command itself is tested end to end in test_cli.cpp (CliBench).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "makemore/bench.h"
#include "makemore/config.h"
#include "makemore/depth.h"
#include "makemore/error.h"
#include "test_util.h"

namespace {

namespace fs = std::filesystem;

const std::string k_depth_cell = std::string(MM_SOURCE_DIR) + "/bench/configs/depth-cell.json";

// The quick grid's cell of width 64, depth 10, Kaiming init, BatchNorm, no residual, SGD, seed 0.
mm::depth::Cell depth_cell(int depth = 10, const char* norm = "batch", bool residual = false) {
  mm::depth::Cell c;
  c.depth = depth;
  c.init = "kaiming";
  c.norm = norm;
  c.optimizer = "sgd";
  c.residual = residual;
  c.seed_index = 0;
  c.seed = mm::depth::quick_grid().seed;
  return c;
}

void expect_the_studys_cell(const std::string& file, const mm::depth::Cell& cell, const mm::depth::Grid& g) {
  SCOPED_TRACE(file);
  ASSERT_EQ(g.width, 64);
  const mm::Config want = mm::parse_config(mm::depth::cell_config_json(cell, g), "study");
  const mm::Config got = mm::load_config_file(std::string(MM_SOURCE_DIR) + "/" + file);
  nlohmann::json a = got.to_json(), b = want.to_json();
  for (const char* k : {"name", "description"}) {  // the file's say where it comes from
    a.erase(k);
    b.erase(k);
  }
  EXPECT_EQ(a, b) << file << " should read:\n" << mm::depth::cell_config_json(cell, g).dump(2);
}

TEST(Bench, DepthCellFileIsTheStudysCell) {
  expect_the_studys_cell("bench/configs/depth-cell.json", depth_cell(), mm::depth::quick_grid());
}

// The full grid's depth-50 cells whose profiles docs/performance.md shows.
TEST(Bench, DepthFiftyCellFilesAreTheFullGridsCells) {
  for (const char* norm : {"none", "batch", "layer"})
    expect_the_studys_cell(std::string("bench/configs/depth-cell-d50-") + norm + ".json", depth_cell(50, norm),
                           mm::depth::full_grid());
  for (const char* norm : {"none", "layer"})
    expect_the_studys_cell(std::string("bench/configs/depth-cell-d50-") + norm + "-res.json", depth_cell(50, norm, true),
                           mm::depth::full_grid());
}

TEST(Bench, EntriesArePresetsThenFiles) {
  mm_test::TempDir dir;
  const fs::path file = dir.path() / "unnamed.json";
  std::ofstream(file) << R"({"model": {"n_embd": 4, "layers": [{"type": "linear", "out": "vocab"}]}})";
  const auto e = mm::bench_entries({"lecture-kaiming"}, {k_depth_cell, file.string()});
  ASSERT_EQ(e.size(), 3u);
  EXPECT_EQ(e[0].name, "lecture-kaiming");
  EXPECT_TRUE(e[0].file.empty());
  EXPECT_EQ(e[1].name, "depth-cell-d10-w64");
  EXPECT_EQ(e[1].file, k_depth_cell);
  EXPECT_EQ(e[2].name, "unnamed") << "a config without a name is named by its file";
  EXPECT_EQ(e[2].cfg.n_embd, 4);
}

TEST(Bench, BadEntriesNameTheirSource) {
  mm_test::TempDir dir;
  const fs::path bad = dir.path() / "bad.json";
  std::ofstream(bad) << R"({"model": {"layers": [{"type": "linear", "out": -3}]}})";
  try {
    mm::bench_entries({}, {bad.string()});
    FAIL() << "a bad config was accepted";
  } catch (const mm::Error& e) {
    EXPECT_NE(std::string(e.what()).find("bad.json"), std::string::npos) << e.what();
  }
  EXPECT_THROW(mm::bench_entries({"no-such-preset"}, {}), mm::Error);
  EXPECT_THROW(mm::bench_entries({}, {(dir.path() / "absent.json").string()}), mm::Error);
}

}  // namespace
