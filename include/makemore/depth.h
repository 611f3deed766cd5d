// `makemore study depth`: does initialization still matter in deep networks once they have
// normalization, residual connections or Adam? A grid of trainings, depth x initialization x
// normalization x residual x optimizer x seed, each cell a fixed step budget, with the
// network's per-layer statistics at initialization. This file builds the grid (each cell's
// config as JSON, through parse_config), runs it resumably on a thread pool, classifies each
// cell against the loss of predicting character frequencies, and writes study.json, the
// figures and study.html. Drawing is plot.h's; the CLI (apps/makemore/cmd_study_depth.cpp)
// only parses options. See docs/study-depth.md.
#pragma once
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "makemore/data.h"

namespace mm::depth {

// Axis values, as the options and study.json spell them.
//   inits: normal (raw N(0,1)), small (Kaiming with gain x 0.1), kaiming (gain 5/3 for tanh),
//          kaiming-nogain (gain 1)
//   norms: none, batch (BatchNorm1d), layer (LayerNorm)
//   optimizers: sgd, adam
inline const std::vector<std::string> kInits = {"normal", "small", "kaiming", "kaiming-nogain"};
inline const std::vector<std::string> kNorms = {"none", "batch", "layer"};
inline const std::vector<std::string> kOptimizers = {"sgd", "adam"};
inline constexpr int kMaxDepth = 50;
// "Trained": final val loss below the unigram entropy of the training targets by this much.
inline constexpr double kTrainedMargin = 0.2;

struct Grid {
  std::vector<int> depths{3, 10};
  std::vector<std::string> inits = kInits;
  std::vector<std::string> norms = kNorms;
  std::vector<bool> residual{false, true};
  std::vector<std::string> optimizers = kOptimizers;
  int seeds = 1;
  int64_t steps = 1000;
  int width = 64;
  int batch_size = 32;
  double sgd_lr = 0.1;            // x0.1 for the last quarter of the steps, as the lecture's 150k/200k
  double adam_lr = 3e-3;          // same decay
  uint64_t seed = 2147483647ULL;  // seed index s trains with seed + s
};
Grid quick_grid();
Grid full_grid();
// Throws mm::Error naming the option (--depths, --inits, ...) and the allowed values.
void validate(const Grid& g);

// The command line's comma lists: "a, b" -> {"a", "b"} (items trimmed, empty ones kept for
// validate to name); --depths as whole numbers and --residual as off / on, each an mm::Error
// naming the option and the item otherwise.
std::vector<std::string> split_list(const std::string& s);
std::vector<int> parse_depths(const std::string& s);
std::vector<bool> parse_residual(const std::string& s);

struct Cell {
  int depth = 0;
  std::string init, norm, optimizer;
  bool residual = false;
  int seed_index = 0;
  uint64_t seed = 0;
  std::string key() const;  // "d10-kaiming-batch-res-adam-s0": file name and id
};
// Seed-major, then depth (deepest first), init, norm, residual, optimizer.
std::vector<Cell> build_cells(const Grid& g);

// The cell's config as parse_config reads it: Embedding(n_embd 10, block 3) -> Linear(30, W) ->
// [norm] -> Tanh, then depth-1 blocks Linear(W, W) -> [norm] -> Tanh (each wrapped in
// {"type": "residual"} when residual is on), then Linear(W, vocab) with the cell's init x 0.1.
nlohmann::json cell_config_json(const Cell& c, const Grid& g);

// The loss of predicting each character by its frequency in the training targets (nats).
double unigram_entropy(const Examples& train, int vocab_size);

enum class Status { Trained, Stuck, Diverged, Failed };
const char* status_name(Status s);
Status classify(bool diverged, double val_loss, double unigram, double margin = kTrainedMargin);

struct Options {
  Grid grid;
  std::string out_dir = "study-depth";
  std::string input;  // word list (required: the CLI passes its default)
  int jobs = 2;
  bool resume = true;  // keep cells finished with the same config (the store, DIR/runs/)
};

// Called after each cell: done, total, and the cell's JSON (status, losses, ...).
using Progress = std::function<void(int done, int total, const nlohmann::json& cell, bool reused)>;

struct StudyOutput {
  nlohmann::json study;  // what study.json holds
  int trained = 0, reused = 0, total = 0;
  std::string table;    // the text table
  bool worker = false;  // an MPI rank other than 0: it only trained; nothing to print
};

// Trains every cell not already in the store (DIR/runs/, study_engine.h), putting each there as it finishes, and writing
// DIR/study.json, DIR/figures/*.svg and DIR/study.html at the end. A cell whose config does
// not parse or whose training throws is recorded as failed with the message (and retried on
// the next run).
StudyOutput run_depth_study(const Options& opt, const Progress& progress);

// The outputs from the finished cells (used by run_depth_study; public for tests).
std::string format_table(const nlohmann::json& study);
void write_outputs(const std::string& out_dir, const nlohmann::json& study);

}  // namespace mm::depth
