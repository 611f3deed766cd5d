// A run folder read into typed data (see run_record.h). The JSON schemas are the writers':
// diag_json.cpp (snapshots, inspect.json, update ratios), metrics.cpp and run.cpp.
#include "makemore/run_record.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

#include "makemore/diag_io.h"
#include "makemore/error.h"
#include "makemore/json_text.h"
#include "makemore/layer_kinds.h"
#include "makemore/run.h"

namespace mm {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// A JSON number, or NaN for null / absent / non-numbers (the writers store NaN as null).
double num(const json& j, const char* key) {
  if (!j.is_object()) return kNoValue;
  auto it = j.find(key);
  if (it == j.end() || !it->is_number()) return kNoValue;
  return it->get<double>();
}

std::string str(const json& j, const char* key) {
  if (!j.is_object()) return "";
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return "";
  return it->is_string() ? it->get<std::string>() : it->dump();
}

// A histogram object {"lo","hi","counts"}; nullopt when it is not one.
std::optional<HistRecord> hist(const json& j, const char* key) {
  if (!j.is_object() || !j.contains(key)) return std::nullopt;
  const json& h = j[key];
  if (!h.is_object() || !h.contains("counts") || !h["counts"].is_array()) return std::nullopt;
  HistRecord out{num(h, "lo"), num(h, "hi"), {}};
  if (!std::isfinite(out.lo) || !std::isfinite(out.hi)) return std::nullopt;
  for (const auto& c : h["counts"]) out.counts.push_back(c.is_number() ? c.get<double>() : 0.0);
  return out;
}

LayerRecord layer_record(const json& l) {
  LayerRecord r;
  r.index = str(l, "name");
  if (r.index.empty()) {
    const double idx = num(l, "index");
    r.index = std::isfinite(idx) ? std::to_string(static_cast<long>(idx)) : "?";
  }
  r.type = str(l, "type");
  const LayerKind* k = find_layer_kind_by_class(r.type);
  r.bounded = k && k->bounded();
  r.out_mean = num(l, "out_mean");
  r.out_std = num(l, "out_std");
  r.saturated_pct = num(l, "saturated_pct");
  r.dead_units = num(l, "dead_units");
  r.grad_mean = num(l, "grad_mean");
  r.grad_std = num(l, "grad_std");
  r.hist = hist(l, "hist");
  r.grad_hist = hist(l, "grad_hist");
  if (l.contains("pre") && l["pre"].is_object()) {
    r.has_pre = true;
    r.pre_mean = num(l["pre"], "mean");
    r.pre_std = num(l["pre"], "std");
    r.pre_hist = hist(l["pre"], "hist");
  }
  return r;
}

ParamRecord param_record(const json& p) {
  ParamRecord r;
  r.name = str(p, "name");
  if (p.contains("shape") && p["shape"].is_array())
    for (const auto& d : p["shape"]) r.shape.push_back(d.is_number_integer() ? d.get<int64_t>() : -1);
  r.data_std = num(p, "data_std");
  r.grad_mean = num(p, "grad_mean");
  r.grad_std = num(p, "grad_std");
  r.grad_data_ratio = num(p, "grad_data_ratio");
  r.update_data_log10 = num(p, "update_data_log10");
  r.grad_hist = p.contains("grad_hist") ? hist(p, "grad_hist") : hist(p, "hist");
  return r;
}

std::optional<SaturationMapRecord> saturation_map(const json& m, std::string& error) {
  if (!m.is_object()) return std::nullopt;
  SaturationMapRecord r;
  r.layer = str(m, "layer");
  r.type = m.contains("type") ? str(m, "type") : "Tanh";
  r.bits = str(m, "bits");
  const double rows = num(m, "rows"), cols = num(m, "cols");
  if (!(rows >= 1 && cols >= 1 && rows <= 1e6 && cols <= 1e6)) {
    error = "rows and cols must be positive";
    return std::nullopt;
  }
  r.rows = static_cast<int>(rows);
  r.cols = static_cast<int>(cols);
  if (r.bits.size() != static_cast<std::size_t>(r.rows) * static_cast<std::size_t>(r.cols)) {
    error = "bits must hold rows x cols characters";
    return std::nullopt;
  }
  return r;
}

std::optional<std::string> read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Collects what the run folder lacks, each with the command that would produce it.
struct Inputs {
  fs::path dir;
  std::vector<std::string> missing;

  std::optional<json> json_file(const char* name, const char* producer) {
    auto text = read_text(dir / name);
    if (!text) {
      missing.push_back(fmt::format("{}: not in the run folder ({})", name, producer));
      return std::nullopt;
    }
    try {
      return parse_json_text(*text, name);
    } catch (const Error& e) {
      missing.push_back(fmt::format("{}: not valid JSON: {}; {}", name, e.what(), producer));
      return std::nullopt;
    }
  }

  // Calls f for each line that parses as a JSON object; a torn last line (a run that was
  // killed) is skipped, and counted.
  void jsonl_file(const char* name, const char* producer, const std::function<void(const json&)>& f) {
    std::ifstream in(dir / name);
    if (!in) {
      missing.push_back(fmt::format("{}: not in the run folder ({})", name, producer));
      return;
    }
    int bad = 0, good = 0;
    for (std::string line; std::getline(in, line);) {
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      const std::optional<json> j = parse_json_line(line);
      if (!j || !j->is_object()) {
        ++bad;
        continue;
      }
      ++good;
      f(*j);
    }
    if (bad) missing.push_back(fmt::format("{}: skipped {} unreadable line(s)", name, bad));
    if (!good) missing.push_back(fmt::format("{}: holds no records ({})", name, producer));
  }
};

constexpr const char* kByTrain = "written by `makemore train`";
constexpr const char* kByDiag = "written by `makemore train` unless --diag-every 0";

// The checkpoint carries the config it was trained with: a config.json edited afterwards must
// not describe the model (it showed "out": 100 for a 200-wide network).
void prefer_checkpoint_config(RunRecord& r, Inputs& in) {
  if (!r.config || !fs::is_regular_file(fs::path(r.dir) / kCheckpointFile)) return;
  try {
    const json saved = load_run(r.dir).config.to_json();
    if (saved != *r.config) {
      in.missing.push_back(
          fmt::format("{}: differs from the config saved in {} (edited after training?); the report shows the checkpoint's",
                      kConfigFile, kCheckpointFile));
      r.config = saved;
    }
  } catch (const std::exception&) {  // a damaged checkpoint is reported where the model is used
  }
}

ResultRecord result_record(const json& j) {
  ResultRecord r;
  r.train_loss = num(j, "train_loss");
  r.val_loss = num(j, "val_loss");
  r.test_loss = num(j, "test_loss");
  r.initial_loss = num(j, "initial_loss");
  r.expected_initial_loss = num(j, "expected_initial_loss");
  r.steps = num(j, "steps");
  r.seconds = num(j, "seconds");
  r.steps_per_sec = num(j, "steps_per_sec");
  r.params = num(j, "params");
  if (const double d = num(j, "diverged_step"); std::isfinite(d)) r.diverged_step = d;
  r.vocab_size = num(j, "vocab_size");
  r.preset = str(j, "preset");
  return r;
}

void read_metrics(RunRecord& r, Inputs& in) {
  // Two kinds of record: a training step's {"step", "loss", "lr"} and an evaluation's
  // {"step", "val_loss"} (train --eval-every); a record may hold both.
  in.jsonl_file(kMetricsFile, kByTrain, [&](const json& j) {
    if (j.contains("loss")) r.losses.push_back({num(j, "step"), num(j, "loss")});
    if (j.contains("val_loss")) r.val_losses.push_back({num(j, "step"), num(j, "val_loss")});
  });
}

void read_update_ratios(UpdateRatioRecord& u, Inputs& in) {
  in.jsonl_file(kUpdateRatioFile, kByDiag, [&](const json& j) {
    if (!j.contains("ratios") || !j["ratios"].is_object()) return;
    const std::size_t row = u.steps.size();
    u.steps.push_back(num(j, "step"));
    for (auto& v : u.values) v.push_back(kNoValue);
    for (const auto& [name, v] : j["ratios"].items()) {
      auto it = std::find(u.names.begin(), u.names.end(), name);
      const auto k = static_cast<std::size_t>(it - u.names.begin());
      if (it == u.names.end()) {
        u.names.push_back(name);
        u.values.emplace_back(row + 1, kNoValue);
      }
      u.values[k][row] = v.is_number() ? v.get<double>() : kNoValue;
    }
  });
}

}  // namespace

std::string ParamRecord::shape_text() const {
  std::string s = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + ")";
}

std::string SnapshotRecord::step_text() const {
  if (!std::isfinite(step)) return "step ?";
  return step == 0 ? "step 0, at initialization" : fmt::format("step {:.0f}", step);
}

double SaturationMapRecord::white_pct() const {
  if (bits.empty()) return 0.0;
  const auto white = static_cast<double>(std::count(bits.begin(), bits.end(), '1'));
  return 100.0 * white / static_cast<double>(bits.size());
}

SnapshotRecord snapshot_record(const json& j) {
  SnapshotRecord s;
  s.step = num(j, "step");
  s.loss = num(j, "loss");
  if (!j.is_object()) return s;
  // Each stack layer, then the layers inside it ("inner_layers", whose "index" is their block's).
  const json none = json::array();
  const json& layers = j.contains("layers") && j["layers"].is_array() ? j["layers"] : none;
  const json& inner = j.contains("inner_layers") && j["inner_layers"].is_array() ? j["inner_layers"] : none;
  std::size_t k = 0;
  for (const auto& l : layers) {
    s.layers.push_back(layer_record(l));
    for (; k < inner.size() && num(inner[k], "index") == num(l, "index"); ++k) s.layers.push_back(layer_record(inner[k]));
  }
  for (; k < inner.size(); ++k) s.layers.push_back(layer_record(inner[k]));
  if (j.contains("params") && j["params"].is_array())
    for (const auto& p : j["params"]) s.params.push_back(param_record(p));
  return s;
}

InspectRecord inspect_record(const json& j) {
  InspectRecord r;
  r.snapshot = snapshot_record(j);
  r.initial_loss = num(j, "initial_loss");
  r.expected_loss = num(j, "expected_loss");
  if (j.is_object() && j.contains("findings") && j["findings"].is_array())
    for (const auto& f : j["findings"]) {
      std::string layer = str(f, "layer");
      if (layer == "null") layer.clear();
      r.findings.push_back({str(f, "id"), layer, str(f, "message"), str(f, "evidence"), str(f, "fix")});
    }
  if (j.is_object() && j.contains("saturation_map"))
    r.saturation_map = saturation_map(j["saturation_map"], r.saturation_map_error);
  return r;
}

const SnapshotRecord* RunRecord::layer_snapshot() const {
  if (first_snapshot) return &*first_snapshot;
  return inspect ? &inspect->snapshot : nullptr;
}

double RunRecord::expected_initial_loss() const {
  const double r = result ? result->expected_initial_loss : kNoValue;
  return std::isfinite(r) || !inspect ? r : inspect->expected_loss;
}

double RunRecord::initial_loss() const {
  const double r = result ? result->initial_loss : kNoValue;
  return std::isfinite(r) || !inspect ? r : inspect->initial_loss;
}

RunRecord read_run_record(const std::string& dir_text) {
  const fs::path dir(dir_text);
  std::error_code ec;
  if (!fs::is_directory(dir, ec) ||
      (!fs::exists(dir / kConfigFile, ec) && !fs::exists(dir / kMetricsFile, ec) && !fs::exists(dir / kCheckpointFile, ec)))
    throw Error(fmt::format("{}: not a run folder (no {}, {} or {}); train one first with `makemore train -o {}`", dir_text,
                            kConfigFile, kMetricsFile, kCheckpointFile, dir_text));
  RunRecord r;
  r.dir = dir_text;
  Inputs in{dir, {}};
  r.config = in.json_file(kConfigFile, kByTrain);
  prefer_checkpoint_config(r, in);
  if (auto j = in.json_file(kResultFile, "written when `makemore train` finishes")) r.result = result_record(*j);
  if (auto j = in.json_file(kInspectFile, kByDiag)) r.inspect = inspect_record(*j);
  read_metrics(r, in);
  // The first snapshot is the lecture's view (step 0, the network as initialized).
  in.jsonl_file(kDiagnosticsFile, kByDiag, [&](const json& j) {
    if (!r.first_snapshot) r.first_snapshot = snapshot_record(j);
  });
  read_update_ratios(r.update_ratios, in);
  r.name = r.config ? str(*r.config, "name") : "";
  if (r.name.empty()) r.name = fs::absolute(dir).lexically_normal().filename().string();
  if (r.name.empty()) r.name = fs::absolute(dir).lexically_normal().parent_path().filename().string();
  r.missing = std::move(in.missing);
  return r;
}

}  // namespace mm
