// The depth study: grid, cell configs (as JSON through parse_config, so layers and optimizers
// other branches add work here by name), resumable parallel training, classification, and the
// outputs (table, study.json, heatmaps, curves, study.html).
#include "makemore/depth.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <tuple>

#include "makemore/cluster.h"
#include "makemore/config.h"
#include "makemore/diag.h"
#include "makemore/error.h"
#include "makemore/layer_kinds.h"
#include "makemore/model.h"
#include "makemore/page.h"
#include "makemore/plot.h"
#include "makemore/run.h"
#include "makemore/study_engine.h"
#include "makemore/train.h"

namespace mm::depth {

using json = nlohmann::json;
namespace fs = std::filesystem;

// ---- the grid ---------------------------------------------------------------------------------

Grid quick_grid() { return Grid{}; }

Grid full_grid() {
  Grid g;
  g.depths = {2, 5, 10, 20, 50};
  g.seeds = 2;
  g.steps = 4000;
  return g;
}

namespace {

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

void check_names(const std::vector<std::string>& got, const std::vector<std::string>& allowed, const char* option,
                 const char* example) {
  if (got.empty())
    throw Error(fmt::format("{}: empty; give one or more of {} (e.g. {} {})", option, join(allowed), option, example));
  std::set<std::string> seen;
  for (const auto& v : got) {
    if (std::find(allowed.begin(), allowed.end(), v) == allowed.end())
      throw Error(
          fmt::format("{}: unknown value '{}'; use one or more of {} (e.g. {} {})", option, v, join(allowed), option, example));
    if (!seen.insert(v).second) throw Error(fmt::format("{}: '{}' given twice; list each value once", option, v));
  }
}

}  // namespace

void validate(const Grid& g) {
  if (g.depths.empty()) throw Error("--depths: empty; give depths from 1 to 50 (e.g. --depths 3,10)");
  std::set<int> seen;
  for (int d : g.depths) {
    if (d < 1 || d > kMaxDepth)
      throw Error(
          fmt::format("--depths: {} is out of range; hidden layers must be from 1 to {} (e.g. --depths 3,10)", d, kMaxDepth));
    if (!seen.insert(d).second) throw Error(fmt::format("--depths: {} given twice; list each depth once", d));
  }
  check_names(g.inits, kInits, "--inits", "kaiming,normal");
  check_names(g.norms, kNorms, "--norms", "none,batch");
  check_names(g.optimizers, kOptimizers, "--optimizers", "sgd");
  if (g.residual.empty()) throw Error("--residual: empty; use off, on or off,on");
  if (g.residual.size() > 2 || (g.residual.size() == 2 && g.residual[0] == g.residual[1]))
    throw Error("--residual: give off, on or off,on (each once)");
  if (g.seeds < 1 || g.seeds > 100) throw Error(fmt::format("--seeds: {} is out of range; use 1 to 100", g.seeds));
  if (g.steps < 1) throw Error(fmt::format("--steps: {} is out of range; use at least 1 step per cell", g.steps));
  if (g.width < 1 || g.width > 4096) throw Error(fmt::format("--width: {} is out of range; use 1 to 4096", g.width));
  if (g.batch_size < 2) throw Error(fmt::format("--batch-size: {} is too small; BatchNorm needs at least 2", g.batch_size));
  // The same bound as a config's train.lr, which each cell's config is checked against.
  if (!(g.sgd_lr > 0) || !(g.sgd_lr <= 1e6))
    throw Error(fmt::format("--sgd-lr: {} is out of range; use a positive number up to 1000000 (default 0.1)", g.sgd_lr));
  if (!(g.adam_lr > 0) || !(g.adam_lr <= 1e6))
    throw Error(fmt::format("--adam-lr: {} is out of range; use a positive number up to 1000000 (default 0.003)", g.adam_lr));
}

// ---- the command line's comma lists ------------------------------------------------------------

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> v;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');) {
    const auto a = item.find_first_not_of(' '), b = item.find_last_not_of(' ');
    v.push_back(a == std::string::npos ? "" : item.substr(a, b - a + 1));
  }
  return v;
}

std::vector<int> parse_depths(const std::string& s) {
  std::vector<int> v;
  for (const auto& item : split_list(s)) {
    std::size_t used = 0;
    int d = 0;
    try {
      d = std::stoi(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (item.empty() || used != item.size())
      throw Error(fmt::format(
          "--depths: '{}' is not a number; give a comma list of hidden-layer counts from 1 to 50 (e.g. --depths 3,10)", item));
    v.push_back(d);
  }
  return v;
}

std::vector<bool> parse_residual(const std::string& s) {
  std::vector<bool> v;
  for (const auto& item : split_list(s)) {
    if (item == "off")
      v.push_back(false);
    else if (item == "on")
      v.push_back(true);
    else
      throw Error(fmt::format("--residual: unknown value '{}'; use off, on or off,on", item));
  }
  return v;
}

std::string Cell::key() const {
  return fmt::format("d{}-{}-{}-{}-{}-s{}", depth, init, norm, residual ? "res" : "plain", optimizer, seed_index);
}

std::vector<Cell> build_cells(const Grid& g) {
  std::vector<int> depths = g.depths;
  std::sort(depths.rbegin(), depths.rend());  // the slowest first: the pool ends evenly
  std::vector<Cell> cells;
  for (int s = 0; s < g.seeds; ++s)
    for (int d : depths)
      for (const auto& init : g.inits)
        for (const auto& norm : g.norms)
          for (bool res : g.residual)
            for (const auto& opt : g.optimizers) {
              Cell c;
              c.depth = d;
              c.init = init;
              c.norm = norm;
              c.residual = res;
              c.optimizer = opt;
              c.seed_index = s;
              c.seed = g.seed + static_cast<uint64_t>(s);
              cells.push_back(c);
            }
  return cells;
}

namespace {

json init_json(const std::string& init, double extra_scale) {
  json j;
  if (init == "normal") {
    j = {{"kind", "normal"}};
  } else if (init == "small") {
    j = {{"kind", "kaiming"}, {"gain", "tanh"}};
    extra_scale *= 0.1;
  } else if (init == "kaiming") {
    j = {{"kind", "kaiming"}, {"gain", "tanh"}};
  } else if (init == "kaiming-nogain") {
    j = {{"kind", "kaiming"}, {"gain", "linear"}};
  } else {
    throw Error(fmt::format("--inits: unknown value '{}'; use one or more of {}", init, join(kInits)));
  }
  if (extra_scale != 1.0) j["scale"] = extra_scale;
  return j;
}

json hidden_block(const Cell& c, int width) {
  json b = json::array();
  b.push_back({{"type", "linear"}, {"out", width}, {"bias", c.norm == "none"}, {"weight_init", init_json(c.init, 1.0)}});
  if (c.norm == "batch")
    b.push_back({{"type", "batchnorm1d"}});
  else if (c.norm == "layer")
    b.push_back({{"type", "layernorm"}});
  b.push_back({{"type", "tanh"}});
  return b;
}

json lr_json(double lr, int64_t steps) {
  const int64_t boundary = steps * 3 / 4;
  if (boundary < 1) return {{"values", {lr}}};
  return {{"values", {lr, lr * 0.1}}, {"boundaries", {boundary}}};
}

}  // namespace

json cell_config_json(const Cell& c, const Grid& g) {
  json layers = json::array();
  for (auto& l : hidden_block(c, g.width)) layers.push_back(l);
  for (int b = 1; b < c.depth; ++b) {
    json blk = hidden_block(c, g.width);
    if (c.residual)
      layers.push_back({{"type", "residual"}, {"layers", blk}});
    else
      for (auto& l : blk) layers.push_back(l);
  }
  layers.push_back({{"type", "linear"}, {"out", "vocab"}, {"bias", true}, {"weight_init", init_json(c.init, 0.1)}});
  return {{"name", "depth-" + c.key()},
          {"description", fmt::format("study depth cell: {} hidden layers of {}, init {}, norm {}, residual {}, {}", c.depth,
                                      g.width, c.init, c.norm, c.residual ? "on" : "off", c.optimizer)},
          {"data", {{"block_size", 3}}},
          {"model", {{"n_embd", 10}, {"layers", layers}}},
          {"train",
           {{"steps", g.steps},
            {"batch_size", g.batch_size},
            {"seed", c.seed},
            {"optimizer", c.optimizer},
            {"lr", lr_json(optimizer_kind(c.optimizer) == OptimizerKind::Adam ? g.adam_lr : g.sgd_lr, g.steps)}}}};
}

double unigram_entropy(const Examples& train, int vocab_size) {
  std::vector<double> count(static_cast<std::size_t>(vocab_size), 0.0);
  for (int32_t y : train.y) count[static_cast<std::size_t>(y)] += 1;
  const double n = static_cast<double>(train.y.size());
  double h = 0;
  for (double k : count)
    if (k > 0) h -= k / n * std::log(k / n);
  return h;
}

const char* status_name(Status s) {
  switch (s) {
    case Status::Trained:
      return "trained";
    case Status::Stuck:
      return "stuck";
    case Status::Diverged:
      return "diverged";
    case Status::Failed:
      return "failed";
  }
  return "failed";
}

Status classify(bool diverged, double val_loss, double unigram, double margin) {
  if (diverged || !std::isfinite(val_loss)) return Status::Diverged;
  return val_loss < unigram - margin ? Status::Trained : Status::Stuck;
}

// ---- one cell ---------------------------------------------------------------------------------

namespace {

std::string status_of(const json& cell) {
  auto it = cell.find("status");
  return it != cell.end() && it->is_string() ? it->get<std::string>() : std::string();
}

json num_or_null(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }
double num_of(const json& j) { return j.is_number() ? j.get<double>() : NAN; }

json cell_header(const Cell& c) {
  return {{"key", c.key()},           {"depth", c.depth},           {"init", c.init}, {"norm", c.norm}, {"residual", c.residual},
          {"optimizer", c.optimizer}, {"seed_index", c.seed_index}, {"seed", c.seed}};
}

// A cell's study.json entry from its config and what the engine returned.
json cell_result(const Cell& c, const json& config_j, const study::Finished& f, double unigram) {
  json out = cell_header(c);
  out["config"] = config_j;
  if (!f.ok()) {
    out["status"] = status_name(Status::Failed);
    out["error"] = f.error;
    out["seconds"] = 0.0;
    return out;
  }
  const study::Record& r = f.record;
  const TrainOutcome& o = r.outcome;
  out["status"] = status_name(classify(o.stats.diverged, o.losses.val, unigram));
  out["initial_loss"] = num_or_null(o.stats.initial_loss);
  out["steps_done"] = o.stats.steps;
  out["diverged_step"] = o.stats.diverged ? json(o.stats.diverged_step) : json(nullptr);
  const bool ok = !o.stats.diverged;
  out["train_loss"] = ok ? num_or_null(o.losses.train) : json(nullptr);
  out["val_loss"] = ok ? num_or_null(o.losses.val) : json(nullptr);
  out["steps_per_sec"] = o.stats.steps_per_sec;
  if (!r.at_init.is_null()) out["at_init"] = r.at_init;
  out["seconds"] = r.seconds;
  return out;
}

// ---- aggregation ------------------------------------------------------------------------------

struct Group {
  int depth = 0;
  std::string init, norm, optimizer;
  bool residual = false;
  std::vector<const json*> cells;  // over seeds
  int n() const { return static_cast<int>(cells.size()); }
  int count(const char* status) const {
    int k = 0;
    for (const auto* c : cells) k += status_of(*c) == status ? 1 : 0;
    return k;
  }
  double mean_of(const char* field) const {  // over the cells with a value
    double s = 0;
    int k = 0;
    for (const auto* c : cells) {
      const double v = c->contains(field) ? num_of((*c)[field]) : NAN;
      if (std::isfinite(v)) {
        s += v;
        ++k;
      }
    }
    return k ? s / k : NAN;
  }
  // The loss counted for "how much does the init matter": a run worse than the unigram entropy
  // (the loss of not using the context at all) or diverged counts as that entropy; a stuck run
  // below it counts as it is.
  double effective_val(double unigram) const {
    double s = 0;
    int k = 0;
    for (const auto* c : cells) {
      if (status_of(*c) == "failed") continue;
      const double v = num_of((*c)["val_loss"]);
      s += std::isfinite(v) ? std::min(v, unigram) : unigram;
      ++k;
    }
    return k ? s / k : NAN;
  }
  std::string label() const {
    if (count("failed")) return "failed";
    if (count("diverged") == n()) return "diverged";
    const int t = count("trained");
    return t == n() ? "trained" : t == 0 ? "stuck" : fmt::format("{}/{} trained", t, n());
  }
};

using GroupKey = std::tuple<int, std::string, std::string, bool, std::string>;

std::map<GroupKey, Group> group_cells(const json& cells) {
  std::map<GroupKey, Group> g;
  for (const auto& c : cells) {
    GroupKey k{c["depth"].get<int>(), c["init"].get<std::string>(), c["norm"].get<std::string>(), c["residual"].get<bool>(),
               c["optimizer"].get<std::string>()};
    Group& gr = g[k];
    gr.depth = std::get<0>(k);
    gr.init = std::get<1>(k);
    gr.norm = std::get<2>(k);
    gr.residual = std::get<3>(k);
    gr.optimizer = std::get<4>(k);
    gr.cells.push_back(&c);
  }
  return g;
}

std::vector<std::string> ordered(const json& grid, const char* axis) {
  std::vector<std::string> v;
  for (const auto& x : grid[axis]) v.push_back(x.get<std::string>());
  return v;
}

// Where a row goes in every table: depth ascending as a number, then the grid's own order of
// inits, norms, residual and optimizers, then the seed. Cells train deepest first (the pool
// ends evenly), and a map keyed by name sorts inits alphabetically: neither is an order to read.
using RowKey = std::tuple<int, std::ptrdiff_t, std::ptrdiff_t, std::ptrdiff_t, std::ptrdiff_t, int>;

std::ptrdiff_t position(const json& list, const json& v) {
  const auto it = std::find(list.begin(), list.end(), v);
  return it - list.begin();  // a value not in the grid goes last
}

RowKey row_key(const json& grid, int depth, const std::string& init, const std::string& norm, bool residual,
               const std::string& opt, int seed_index) {
  return {depth,
          position(grid["inits"], init),
          position(grid["norms"], norm),
          position(grid["residual"], residual),
          position(grid["optimizers"], opt),
          seed_index};
}

RowKey row_key(const json& grid, const json& cell) {
  return row_key(grid, cell["depth"].get<int>(), cell["init"].get<std::string>(), cell["norm"].get<std::string>(),
                 cell["residual"].get<bool>(), cell["optimizer"].get<std::string>(), cell["seed_index"].get<int>());
}

std::vector<int> sorted_depths(const json& grid) {
  std::vector<int> d;
  for (const auto& v : grid["depths"]) d.push_back(v.get<int>());
  std::sort(d.begin(), d.end());
  return d;
}

std::string panel_name(const std::string& norm, bool residual, const std::string& opt) {
  return fmt::format("norm {}, residual {}, {}", norm, residual ? "on" : "off", opt);
}

std::string panel_file(const std::string& norm, bool residual, const std::string& opt) {
  return fmt::format("heatmap_{}_{}_{}.svg", norm, residual ? "res" : "plain", opt);
}

// Per (norm, residual, optimizer) and depth: how many inits trained and how far apart the
// inits' final losses are.
json summarize(const json& study) {
  const double unigram = study["unigram_entropy"].get<double>();
  const auto groups = group_cells(study["cells"]);
  const json& grid = study["grid"];
  json panels = json::array();
  for (const auto& norm : ordered(grid, "norms"))
    for (const auto& res_j : grid["residual"])
      for (const auto& opt : ordered(grid, "optimizers")) {
        const bool res = res_j.get<bool>();
        json rows = json::array();
        for (const int d : sorted_depths(grid)) {
          int trained = 0, failed = 0, present = 0;
          double lo = INFINITY, hi = -INFINITY;
          json by_init = json::object();
          for (const auto& init : ordered(grid, "inits")) {
            auto it = groups.find(GroupKey{d, init, norm, res, opt});
            if (it == groups.end()) continue;
            ++present;
            const Group& g = it->second;
            if (g.count("failed")) {
              ++failed;
              by_init[init] = "failed";
              continue;
            }
            if (g.count("trained") == g.n()) ++trained;
            const double e = g.effective_val(unigram);
            lo = std::min(lo, e);
            hi = std::max(hi, e);
            by_init[init] = {{"val_loss", num_or_null(g.mean_of("val_loss"))}, {"status", g.label()}};
          }
          rows.push_back({{"depth", d},
                          {"inits", present},
                          {"trained_inits", trained},
                          {"failed_inits", failed},
                          {"best_val", num_or_null(lo)},
                          {"spread", num_or_null(hi - lo)},
                          {"by_init", by_init}});
        }
        panels.push_back({{"norm", norm}, {"residual", res}, {"optimizer", opt}, {"depths", rows}});
      }
  return panels;
}

std::string residual_list(const json& r) {
  std::string s;
  for (const auto& v : r) s += (s.empty() ? "" : ", ") + std::string(v.get<bool>() ? "on" : "off");
  return s;
}

std::string fmt_num(double v, int prec = 3) { return std::isfinite(v) ? fmt::format("{:.{}f}", v, prec) : "-"; }

// A block's saturated % at init for the tables: "n/a" unless its output is a Tanh's (a cell
// file written before residual outputs stored null still has a number there).
std::string saturation_text(const json& block) {
  const LayerKind* kind = find_layer_kind_by_class(block.value("type", std::string()));
  if (!kind || !kind->bounded()) return "n/a";
  return fmt_num(num_of(block.value("saturated_pct", json())), 1);
}

// The last hidden block at init of the group's first cell that has one; nullptr if none.
const json* last_block(const Group& g) {
  for (const auto* c : g.cells)
    if (c->contains("at_init") && !(*c)["at_init"]["blocks"].empty()) return &(*c)["at_init"]["blocks"].back();
  return nullptr;
}

// First and last hidden block's value of a per-block statistic at init.
std::pair<double, double> first_last(const Group& g, const char* field) {
  for (const auto* c : g.cells) {
    if (!c->contains("at_init")) continue;
    const auto& b = (*c)["at_init"]["blocks"];
    if (b.empty()) continue;
    return {num_of(b.front()[field]), num_of(b.back()[field])};
  }
  return {NAN, NAN};
}

}  // namespace

// ---- outputs ----------------------------------------------------------------------------------

std::string format_table(const json& study) {
  const double unigram = study["unigram_entropy"].get<double>();
  const auto groups = group_cells(study["cells"]);
  const int seeds = study["grid"]["seeds"].get<int>();
  std::string o;
  o += fmt::format("{:>5} {:<15} {:<6} {:<4} {:<5} | {:>7} {:>7} {:<16} | {:>15} {:>7} | {:>19}\n", "depth", "init", "norm",
                   "res", "opt", "train", "val", fmt::format("({} seed{})", seeds, seeds > 1 ? "s" : ""), "act std 1st/last",
                   "sat%", "grad std 1st/last");
  std::vector<const Group*> rows;
  for (const auto& [k, g] : groups) rows.push_back(&g);
  const json& grid = study["grid"];
  std::sort(rows.begin(), rows.end(), [&](const Group* a, const Group* b) {
    return row_key(grid, a->depth, a->init, a->norm, a->residual, a->optimizer, 0) <
           row_key(grid, b->depth, b->init, b->norm, b->residual, b->optimizer, 0);
  });
  for (const Group* gp : rows) {
    const Group& g = *gp;
    const auto act = first_last(g, "act_std");
    const json* last = last_block(g);
    const auto grad = first_last(g, "grad_std");
    o += fmt::format("{:>5} {:<15} {:<6} {:<4} {:<5} | {:>7} {:>7} {:<16} | {:>7}/{:<7} {:>7} | {:>9}/{:<9}\n", g.depth, g.init,
                     g.norm, g.residual ? "on" : "off", g.optimizer, fmt_num(g.mean_of("train_loss")),
                     fmt_num(g.mean_of("val_loss")), g.label(), fmt_num(act.first), fmt_num(act.second),
                     last ? saturation_text(*last) : "-", std::isfinite(grad.first) ? fmt::format("{:.2e}", grad.first) : "-",
                     std::isfinite(grad.second) ? fmt::format("{:.2e}", grad.second) : "-");
  }
  o += fmt::format(
      "\ntrained: val loss < unigram entropy {:.4f} - {:.1f} = {:.4f} nats (the loss of predicting character "
      "frequencies)\nsat%: share of the last hidden block's tanh outputs with |t| > 0.97 at init; n/a when that block is "
      "residual (x + f(x) is not a tanh output, not bounded)\n",
      unigram, study["trained_margin"].get<double>(), unigram - study["trained_margin"].get<double>());
  o += "\nHow much the initialization matters, per panel and depth: inits trained, and the spread of val loss over "
       "inits\n(a val loss above the unigram entropy, or a diverged run, counts as the unigram entropy):\n";
  for (const auto& p : study["summary"]) {
    std::string line;
    for (const auto& r : p["depths"]) {
      if (r["inits"].get<int>() == 0) continue;
      line += fmt::format("  d{}: {}/{}{} spread {}", r["depth"].get<int>(), r["trained_inits"].get<int>(), r["inits"].get<int>(),
                          r["failed_inits"].get<int>() ? fmt::format(" ({} failed)", r["failed_inits"].get<int>()) : "",
                          fmt_num(num_of(r["spread"])));
    }
    o += fmt::format("  {:<34}{}\n", panel_name(p["norm"], p["residual"].get<bool>(), p["optimizer"]), line);
  }
  return o;
}

namespace {

using Figures = std::vector<std::pair<std::string, std::string>>;  // file, svg

Figures heatmaps_of(const json& study) {
  const double unigram = study["unigram_entropy"].get<double>();
  const json& grid = study["grid"];
  const auto groups = group_cells(study["cells"]);
  const auto inits = ordered(grid, "inits");
  const std::vector<int> depths = sorted_depths(grid);

  // Heatmaps of final val loss, depth x init, one per (norm, residual, optimizer), one color
  // scale for all: from the best loss to a little above the unigram entropy.
  double best = INFINITY;
  for (const auto& [k, g] : groups) best = std::min(best, g.mean_of("val_loss"));
  if (!std::isfinite(best) || best >= unigram) best = unigram - 1.0;
  Figures heatmaps;
  for (const auto& norm : ordered(grid, "norms"))
    for (const auto& res_j : grid["residual"])
      for (const auto& opt : ordered(grid, "optimizers")) {
        const bool res = res_j.get<bool>();
        plot::Heatmap h;
        h.title = "Final val loss: " + panel_name(norm, res, opt);
        h.x_label = "initialization";
        h.y_label = "hidden layers";
        h.value_label = "val loss (nats)";
        h.x_categories = inits;
        h.has_range = true;
        h.lo = std::floor(best * 10) / 10;
        h.hi = unigram + 0.2;
        for (int d : depths) {
          h.y_categories.push_back(std::to_string(d));
          for (const auto& init : inits) {
            auto it = groups.find(GroupKey{d, init, norm, res, opt});
            if (it == groups.end()) {
              h.values.push_back(NAN);
              h.cell_text.push_back("-");
              continue;
            }
            const Group& g = it->second;
            const std::string lab = g.label();
            const double v = g.mean_of("val_loss");
            h.values.push_back(lab == "failed" ? NAN : v);
            if (lab == "failed" || !std::isfinite(v))
              h.cell_text.push_back(lab == "failed" ? "failed" : "diverged");
            else if (lab == "trained")
              h.cell_text.push_back(fmt::format("{:.2f}", v));
            else if (lab == "stuck")
              h.cell_text.push_back(fmt::format("{:.2f} stuck", v));
            else
              h.cell_text.push_back(fmt::format("{:.2f} ({})", v, lab.substr(0, lab.find(' '))));
          }
        }
        heatmaps.emplace_back(panel_file(norm, res, opt), plot::render_svg(h));
      }

  return heatmaps;
}

Figures init_curves_of(const json& study) {
  const json& grid = study["grid"];
  const auto groups = group_cells(study["cells"]);
  const auto inits = ordered(grid, "inits");
  const std::vector<int> depths = sorted_depths(grid);

  // Activation and gradient std across depth at init, at the deepest depth, one line per init,
  // one chart per (norm, residual); the first optimizer's seed-0 cell (step 0 does not depend
  // on the optimizer).
  Figures curves;
  const int deepest = depths.empty() ? 0 : depths.back();
  const std::string opt0 = ordered(grid, "optimizers").front();
  for (const auto& norm : ordered(grid, "norms"))
    for (const auto& res_j : grid["residual"]) {
      const bool res = res_j.get<bool>();
      for (const char* what : {"act_std", "grad_std"}) {
        plot::LineChart ch;
        const bool act = std::string(what) == "act_std";
        ch.title = fmt::format("{} at init, {} hidden layers, norm {}, residual {}", act ? "Activation std" : "Gradient std",
                               deepest, norm, res ? "on" : "off");
        ch.x_label = "hidden layer";
        ch.y_label = act ? "std of the block output" : "log10 std of dL/d(block output)";
        ch.log_y = !act;
        ch.y_from_zero = act;  // normalized layers' stds of ~0.63 each must look level, not jagged
        for (const auto& init : inits) {
          auto it = groups.find(GroupKey{deepest, init, norm, res, opt0});
          if (it == groups.end()) continue;
          const json* cell = it->second.cells.front();
          if (!cell->contains("at_init")) continue;
          plot::Series s;
          s.label = init;
          int k = 1;
          for (const auto& b : (*cell)["at_init"]["blocks"]) {
            s.x.push_back(k++);
            s.y.push_back(num_of(b[what]));
          }
          ch.series.push_back(std::move(s));
        }
        if (ch.series.empty()) continue;
        curves.emplace_back(fmt::format("{}_{}_{}.svg", act ? "act_std" : "grad_std", norm, res ? "res" : "plain"),
                            plot::render_svg(ch));
      }
    }
  return curves;
}

std::string page_head(const json& study) {
  using plot::xml_escape;
  const double unigram = study["unigram_entropy"].get<double>();
  const double margin = study["trained_margin"].get<double>();
  const json& grid = study["grid"];
  const auto inits = ordered(grid, "inits");
  const std::vector<int> depths = sorted_depths(grid);
  std::string html;
  html += fmt::format(
      "<h1>Depth study: does initialization still matter?</h1><p>{} cells: hidden layers {} of width {}, inits {}, norms {}, "
      "residual {}, optimizers {}, {} seed(s), {} steps each (batch {}; lr sgd {} / adam {}, x0.1 for the last quarter). "
      "{:.0f} s of training.</p>",
      study["cells"].size(), grid["depths"].dump(), grid["width"].get<int>(), xml_escape(join(inits)),
      xml_escape(join(ordered(grid, "norms"))), residual_list(grid["residual"]), xml_escape(join(ordered(grid, "optimizers"))),
      grid["seeds"].get<int>(), grid["steps"].get<int64_t>(), grid["batch_size"].get<int>(), grid["sgd_lr"].get<double>(),
      grid["adam_lr"].get<double>(), study["seconds"].get<double>());
  html += fmt::format(
      "<p><b>Trained</b>: final val loss below the unigram entropy of the training targets ({:.4f} nats, the loss of "
      "predicting each character by its frequency) minus {:.1f}, i.e. below {:.4f}. <b>Stuck</b>: finite but not below. "
      "<b>Diverged</b>: the loss became non-finite. <b>Failed</b>: the cell's config or training raised an error (shown in "
      "the table).</p>",
      unigram, margin, unigram - margin);
  html +=
      "<h2>How much the initialization matters</h2><p>Per panel and depth: inits that trained (all seeds), and the "
      "spread (max - min) of val loss over inits, a val loss above the unigram entropy (or a diverged run) counting as the "
      "unigram entropy.</p>"
      "<table><tr><th>panel</th>";
  for (int d : depths) html += fmt::format("<th>depth {}</th>", d);
  html += "</tr>";
  for (const auto& p : study["summary"]) {
    html += "<tr><td class=\"l\">" + xml_escape(panel_name(p["norm"], p["residual"].get<bool>(), p["optimizer"])) + "</td>";
    std::map<int, const json*> byd;
    for (const auto& r : p["depths"]) byd[r["depth"].get<int>()] = &r;
    for (int d : depths) {
      const json& r = *byd[d];
      html += fmt::format("<td>{}/{} trained{}, spread {}</td>", r["trained_inits"].get<int>(), r["inits"].get<int>(),
                          r["failed_inits"].get<int>() ? fmt::format(" ({} failed)", r["failed_inits"].get<int>()) : "",
                          fmt_num(num_of(r["spread"])));
    }
    html += "</tr>";
  }
  return html;
}

std::string every_cell_table(const json& study) {
  using plot::xml_escape;
  const json& grid = study["grid"];
  std::string html;
  html +=
      "</div><h2>Every cell</h2><p>The act std, saturated % and grad std columns are of the first minibatch at "
      "initialization (step 0), at the first and the last hidden block's output: its Tanh, or with residual on, the "
      "residual block's x + f(x). <b>saturated %</b>: share of the last block's outputs with |t| &gt; 0.97 (the "
      "lecture's threshold) where that output is a Tanh's; n/a for a residual block: x + f(x) is not bounded by 1, "
      "so its share beyond 0.97 is not "
      "saturation.</p><table><tr><th>depth</th><th>init</th><th>norm</th><th>residual</th><th>optimizer</th>"
      "<th>seed</th><th>step-0 loss</th><th>train</th><th>val</th><th>status</th><th>act std first / last</th>"
      "<th>saturated % last (|t| &gt; 0.97)</th><th>grad std first / last</th><th>s</th></tr>";
  std::vector<const json*> rows;
  for (const auto& c : study["cells"]) rows.push_back(&c);
  std::stable_sort(rows.begin(), rows.end(), [&](const json* a, const json* b) { return row_key(grid, *a) < row_key(grid, *b); });
  for (const json* cp : rows) {
    const json& c = *cp;
    const std::string st = c["status"].get<std::string>();
    double a0 = NAN, a1 = NAN, g0 = NAN, g1 = NAN;
    std::string s1 = "-";
    if (c.contains("at_init") && !c["at_init"]["blocks"].empty()) {
      const auto& b = c["at_init"]["blocks"];
      a0 = num_of(b.front()["act_std"]);
      a1 = num_of(b.back()["act_std"]);
      s1 = saturation_text(b.back());
      g0 = num_of(b.front()["grad_std"]);
      g1 = num_of(b.back()["grad_std"]);
    }
    html += fmt::format(
        "<tr class=\"{}\"><td>{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td>"
        "<td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"l\">{}</td><td>{} / {}</td><td>{}</td><td>{} / "
        "{}</td><td>{}</td></tr>",
        st, c["depth"].get<int>(), xml_escape(c["init"].get<std::string>()), xml_escape(c["norm"].get<std::string>()),
        c["residual"].get<bool>() ? "on" : "off", xml_escape(c["optimizer"].get<std::string>()), c["seed_index"].get<int>(),
        fmt_num(c.contains("initial_loss") ? num_of(c["initial_loss"]) : NAN),
        fmt_num(c.contains("train_loss") ? num_of(c["train_loss"]) : NAN),
        fmt_num(c.contains("val_loss") ? num_of(c["val_loss"]) : NAN),
        xml_escape(st == "failed" && c.contains("error") ? "failed: " + c["error"].get<std::string>() : st), fmt_num(a0),
        fmt_num(a1), s1, std::isfinite(g0) ? fmt::format("{:.2e}", g0) : "-", std::isfinite(g1) ? fmt::format("{:.2e}", g1) : "-",
        fmt_num(num_of(c["seconds"]), 1));
  }
  return html + "</table>\n";
}

}  // namespace

void write_outputs(const std::string& out_dir, const json& study) {
  std::error_code ec;
  fs::create_directories(out_dir + "/figures", ec);
  if (ec) throw Error(fmt::format("{}: cannot create the study folder ({})", out_dir, ec.message()));
  write_file_atomic(out_dir + "/study.json", study.dump(1) + "\n");
  const Figures heatmaps = heatmaps_of(study), curves = init_curves_of(study);
  for (const auto& [f, svg] : heatmaps) write_file_atomic(out_dir + "/figures/" + f, svg);
  for (const auto& [f, svg] : curves) write_file_atomic(out_dir + "/figures/" + f, svg);
  std::string html = page_head(study);
  html += "</table><h2>Final val loss: depth x initialization</h2><div class=\"figs\">";
  for (const auto& [f, svg] : heatmaps) html += "<div><a href=\"figures/" + f + "\">" + f + "</a><br>" + svg + "</div>";
  html += "</div><h2>Activation and gradient std across depth at initialization</h2><div class=\"figs\">";
  for (const auto& [f, svg] : curves) html += "<div><a href=\"figures/" + f + "\">" + f + "</a><br>" + svg + "</div>";
  // The shared page (page.h), wide for the side-by-side heatmaps; the body is this study's markup.
  page::Page doc("makemore study depth", true);
  doc.html(html + every_cell_table(study));
  write_file_atomic(out_dir + "/study.html", doc.document());
}

// ---- the run ----------------------------------------------------------------------------------

namespace {

// Each cell's config, parsed into a job; a config that does not parse is the cell's failure.
struct CellJobs {
  std::vector<json> configs;            // per cell
  std::vector<study::Job> jobs;         // the cells that parsed
  std::vector<std::size_t> cell_of;     // jobs[k] is cell cell_of[k]
  std::vector<study::Finished> failed;  // per cell: the parse error, if any
};

CellJobs cell_jobs(const std::vector<Cell>& cells, const Grid& g) {
  CellJobs cj;
  cj.failed.resize(cells.size());
  for (std::size_t i = 0; i < cells.size(); ++i) {
    cj.configs.push_back(cell_config_json(cells[i], g));
    try {
      const Config cfg = parse_config(cj.configs[i], "study depth cell " + cells[i].key());
      cj.jobs.push_back(study::make_job(cells[i].key(), cfg, cfg.seed, /*at_init=*/true));
      cj.cell_of.push_back(i);
    } catch (const std::exception& e) {
      cj.failed[i].error = e.what();
    }
  }
  return cj;
}

// study.json: the grid, the cells in table order, the summary.
json study_json(const Grid& g, std::vector<json>& results) {
  json grid_j{{"depths", g.depths},         {"inits", g.inits},   {"norms", g.norms},     {"residual", g.residual},
              {"optimizers", g.optimizers}, {"seeds", g.seeds},   {"steps", g.steps},     {"width", g.width},
              {"batch_size", g.batch_size}, {"sgd_lr", g.sgd_lr}, {"adam_lr", g.adam_lr}, {"seed", g.seed}};
  // study.json lists the cells as the tables do, not in the order they trained.
  std::vector<std::size_t> order(results.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return row_key(grid_j, results[a]) < row_key(grid_j, results[b]); });
  json cells_j = json::array();
  for (std::size_t i : order) cells_j.push_back(std::move(results[i]));
  return {{"grid", grid_j}, {"cells", std::move(cells_j)}};
}

}  // namespace

namespace {

struct Prepared {
  std::vector<Cell> cells;
  Dataset data;
  double unigram = 0;
  study::Store store;
  CellJobs cj;
};

// Everything before the first training: the grid checked, the words read, the store locked.
Prepared prepare(const Options& opt) {
  const Grid& g = opt.grid;
  validate(g);
  if (opt.jobs < 1) throw Error(fmt::format("--jobs: {} must be at least 1", opt.jobs));
  Prepared p;
  p.cells = build_cells(g);
  p.data = Dataset::load(opt.input);
  // Every cell reads the same data section (block size, split seed): the first cell's says what.
  const Config data_cfg = parse_config(cell_config_json(p.cells.front(), g), "study depth cell " + p.cells.front().key());
  p.unigram = unigram_entropy(p.data.split_nonempty(data_cfg.block_size, data_cfg.split_seed).train, p.data.vocab().size());
  p.store = study::Store::open(opt.out_dir + "/runs");
  p.cj = cell_jobs(p.cells, g);
  return p;
}

}  // namespace

StudyOutput run_depth_study(const Options& opt, const Progress& progress) {
  // Under mpirun or srun the cells are trained across the ranks (cluster.h), as a sweep's are.
  cluster::World world;
  StudyOutput out;
  out.worker = cluster::served_as_worker(world);
  if (out.worker) return out;
  Prepared p = cluster::prepare_and_share(
      world, [&] { return prepare(opt); }, [](const Prepared& q) -> const Dataset& { return q.data; });
  const Grid& g = opt.grid;
  const std::vector<Cell>& cells = p.cells;
  const Dataset& data = p.data;
  const double unigram = p.unigram;
  const CellJobs& cj = p.cj;

  std::vector<json> results(cells.size());
  int done = 0, reused = 0;
  const int total = static_cast<int>(cells.size());
  auto settle = [&](std::size_t i, const study::Finished& f) {
    results[i] = cell_result(cells[i], cj.configs[i], f, unigram);
    results[i]["words_fnv1a"] = data.fingerprint();  // a rerun with the same words under another path keeps it
    results[i]["unigram_entropy"] = unigram;
    reused += f.reused ? 1 : 0;
    if (progress) progress(++done, total, results[i], f.reused);
  };
  study::RunOptions ro;
  ro.threads = opt.jobs;
  ro.resume = opt.resume;
  ro.on_finished = [&](std::size_t k, const study::Finished& f) { settle(cj.cell_of[k], f); };
  const auto t0 = std::chrono::steady_clock::now();
  for (std::size_t i = 0; i < cells.size(); ++i)
    if (!cj.failed[i].ok()) settle(i, cj.failed[i]);
  cluster::run_jobs_here_or_on_ranks(world, cj.jobs, data, p.store, ro);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  const json parts = study_json(g, results);
  for (const auto& c : parts["cells"]) out.trained += status_of(c) == "trained" ? 1 : 0;
  out.study = {{"study", "depth"},       {"input", data.source()},     {"words_fnv1a", data.fingerprint()},
               {"grid", parts["grid"]},  {"unigram_entropy", unigram}, {"trained_margin", kTrainedMargin},
               {"jobs", opt.jobs},       {"seconds", seconds},         {"cells_reused", reused},
               {"cells", parts["cells"]}};
  out.study["summary"] = summarize(out.study);
  out.reused = reused;
  out.total = total;
  out.table = format_table(out.study);
  write_outputs(opt.out_dir, out.study);
  return out;
}

}  // namespace mm::depth
