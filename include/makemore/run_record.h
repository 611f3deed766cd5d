// A run folder read back into typed data, for the pages that show runs (report.h, compare.h):
// the config, result.json, the per-step losses and validation losses of metrics.jsonl, the
// first snapshot of diagnostics.jsonl, inspect.json (the last step's snapshot, findings and
// saturation map) and update_ratio.jsonl. One reader, tolerant: every file is optional (a
// half-finished run still shows what it has), and each file that is absent, unreadable or holds
// unreadable lines adds one line to `missing` naming the file and what writes it. Only a folder
// that holds nothing a training writes is an error.
#pragma once
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace mm {

// Values the writers store as null (NaN) or that a file lacks are NaN.
inline constexpr double kNoValue = std::numeric_limits<double>::quiet_NaN();

struct HistRecord {
  double lo = 0, hi = 0;
  std::vector<double> counts;
};

struct LayerRecord {
  std::string index;     // "3", or "2.1" for a layer inside block 2 (its "name")
  std::string type;      // the layer's class name, e.g. "Tanh"
  bool bounded = false;  // the registry's trait: a bounded activation (Tanh, Sigmoid)
  double out_mean = kNoValue, out_std = kNoValue, saturated_pct = kNoValue, dead_units = kNoValue;
  double grad_mean = kNoValue, grad_std = kNoValue;
  std::optional<HistRecord> hist, grad_hist;
  bool has_pre = false;  // the input of a bounded activation
  double pre_mean = kNoValue, pre_std = kNoValue;
  std::optional<HistRecord> pre_hist;
  std::string label() const { return "layer " + index + " (" + type + ")"; }
};

struct ParamRecord {
  std::string name;
  std::vector<int64_t> shape;
  double data_std = kNoValue, grad_mean = kNoValue, grad_std = kNoValue, grad_data_ratio = kNoValue;
  double update_data_log10 = kNoValue;
  std::optional<HistRecord> grad_hist;
  std::string shape_text() const;  // "(27, 10)"
};

// One diagnostics snapshot: layers in forward order (the layers inside a residual block right
// after their block), the parameters in network order.
struct SnapshotRecord {
  double step = kNoValue, loss = kNoValue;
  std::vector<LayerRecord> layers;
  std::vector<ParamRecord> params;
  std::string step_text() const;  // "step 0, at initialization" / "step 4999"
};

struct FindingRecord {
  std::string id, layer, message, evidence, fix;  // layer empty when the finding has none
};

struct SaturationMapRecord {
  std::string layer, type;
  int rows = 0, cols = 0;
  std::string bits;  // rows x cols of '0' / '1' ('1': |h| > 0.99)
  double white_pct() const;
};

struct InspectRecord {
  SnapshotRecord snapshot;
  double initial_loss = kNoValue, expected_loss = kNoValue;
  std::vector<FindingRecord> findings;
  std::optional<SaturationMapRecord> saturation_map;
  std::string saturation_map_error;  // why a saturation_map present could not be read
};

struct ResultRecord {
  double train_loss = kNoValue, val_loss = kNoValue, test_loss = kNoValue;
  double initial_loss = kNoValue, expected_initial_loss = kNoValue;
  double steps = kNoValue, seconds = kNoValue, steps_per_sec = kNoValue, params = kNoValue;
  std::optional<double> diverged_step;
  double vocab_size = kNoValue;
  std::string preset;  // empty for a run from a config file
};

struct StepValue {
  double step, value;
};

// update_ratio.jsonl: log10(update std / data std) per parameter, by step.
struct UpdateRatioRecord {
  std::vector<double> steps;
  std::vector<std::string> names;           // first-seen order
  std::vector<std::vector<double>> values;  // [name][row], NaN where a record lacks the name
};

struct RunRecord {
  std::string dir;   // as given
  std::string name;  // the config's name, else the folder's
  // The config the model was trained with (the checkpoint's when there is one), for display.
  std::optional<nlohmann::json> config;
  std::optional<ResultRecord> result;
  std::vector<StepValue> losses;                 // metrics.jsonl's {"step", "loss"} records
  std::vector<StepValue> val_losses;             // its {"step", "val_loss"} records (train --eval-every)
  std::optional<SnapshotRecord> first_snapshot;  // diagnostics.jsonl's first line
  std::optional<InspectRecord> inspect;
  UpdateRatioRecord update_ratios;
  std::vector<std::string> missing;  // one line per input absent or unreadable

  // The snapshot the per-layer figures show: the first diagnostics snapshot, else inspect's.
  const SnapshotRecord* layer_snapshot() const;
  // -ln(1/vocab): result.json's, else inspect.json's (NaN when neither has it).
  double expected_initial_loss() const;
  double initial_loss() const;  // result.json's, else inspect.json's
};

// Throws mm::Error when `dir` is not a folder or holds none of config.json, metrics.jsonl and
// model.safetensors (not a run: a typo, the wrong folder).
RunRecord read_run_record(const std::string& dir);

// The pieces, for readers of single files: fields absent or of another type read as NaN / empty.
SnapshotRecord snapshot_record(const nlohmann::json& j);
InspectRecord inspect_record(const nlohmann::json& j);

}  // namespace mm
