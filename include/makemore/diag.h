// Training diagnostics, the lecture's cells 15-18 as an observer of the training loop: per
// layer the output (and for Tanh the pre-activation) mean / std / saturation / histogram, the
// gradient flowing into each layer's output, per parameter the gradient and grad:data ratio,
// and per step the update:data ratio log10(std(update) / std(data)) of what SGD applied. The
// doctor (diagnose) turns a snapshot into findings with evidence and a fix. Plots and the HTML
// report read the JSON written here; they live elsewhere.
#pragma once
#include <cstddef>
#include <cstdio>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "makemore/data.h"
#include "makemore/model.h"
#include "makemore/train.h"

namespace mm {

// ---- statistics ----------------------------------------------------------------------------
// mean, std (unbiased, as torch's .std()), min/max of the finite values, in one pass. Sums are
// taken in double around a shift (the first finite value), so a large mean costs no precision.
struct Moments {
  double mean = 0, std = 0, min = 0, max = 0;
  int64_t n = 0;          // finite values
  int64_t nonfinite = 0;  // NaN / inf, left out of everything else
};
Moments moments(const float* x, std::size_t n);

// Welford's running mean / variance, for values that arrive one at a time (losses).
class Welford {
 public:
  void add(double x);
  int64_t count() const { return n_; }
  double mean() const { return mean_; }
  double var() const { return n_ > 1 ? m2_ / static_cast<double>(n_ - 1) : 0.0; }
  double std() const;

 private:
  int64_t n_ = 0;
  double mean_ = 0, m2_ = 0;
};

// counts[k] holds values in [lo + k w, lo + (k+1) w); values outside [lo, hi] go to the edge
// bins so the counts sum to the finite values. lo >= hi: the range is taken from the data.
struct Histogram {
  double lo = 0, hi = 0;
  std::vector<int64_t> counts;
};
Histogram histogram(const float* x, std::size_t n, int bins, double lo = 0, double hi = 0);

// Where a bounded activation saturates: |u| > threshold for u = (x - center) * scale, its output
// mapped from [lo, hi] onto [-1, 1] (a tanh's own value, 2s - 1 for a sigmoid), so one threshold
// means the same share of the peak local gradient for every bounded kind: 1 - u^2 is tanh's
// 1 - t^2 and sigmoid's 4 s (1 - s). The default is a tanh's [-1, 1].
struct SaturationScale {
  float center = 0.0f, scale = 1.0f;
  static SaturationScale of(double lo, double hi);
};
// Columns of a (rows, cols) matrix where |u| > threshold in every row: the lecture's
// "whole column white" in the saturation map, units that pass no gradient for any example.
int count_dead_columns(const Mat& t, float threshold = 0.99f, SaturationScale s = {});
double fraction_beyond(const float* x, std::size_t n, float threshold, SaturationScale s = {});  // share of |u| > t

// ---- a snapshot of one step -----------------------------------------------------------------
// Saturation fields are computed for every layer, but only mean something for a bounded
// activation (its kind's traits: Tanh, Sigmoid), where they are taken on the output mapped onto
// [-1, 1]; dead units are counted for bounded activations only (0 elsewhere).
struct LayerDiag {
  const LayerKind* kind = nullptr;  // the layer's registry entry (its traits)
  bool bounded() const;             // a bounded activation
  int index = 0;          // position in model.stack(), as the lecture numbers its layers; for a
                          // layer inside a block (a Residual's branch), the block's position
  std::string name;       // "2", or "2.1" for layer 1 of the branch of stack layer 2
  std::string type;       // "Linear", "BatchNorm1d", "Tanh" ...: kind's class name, as JSON records it
  std::string describe;   // "Linear(30, 100, bias=False)"
  int units = 0;          // output features
  Moments out;
  double saturated_pct = 0;  // % of |u| > 0.97 (the lecture's cell 15: |out| for a Tanh)
  double sat99_pct = 0;      // % of |u| > 0.99
  int dead_units = 0;        // units with |u| > 0.99 for every row of the minibatch
  // Over the larger sample (train mode, batch statistics); -1 when not measured.
  int dead_units_sample = -1;
  double sat99_pct_sample = -1;
  Histogram hist;         // of the output; over its bounds for a bounded activation
  bool has_grad = false;  // dL/d(out) was recorded (after a backward)
  Moments grad;
  Histogram grad_hist;
  bool has_pre = false;   // a bounded activation: its input, the pre-activation
  Moments pre;
  Histogram pre_hist;
};

struct ParamDiag {
  std::string name;  // "layers.0.weight"
  int rows = 0, cols = 0;
  bool is_1d = false;
  Moments data;      // after the step's update when there was one (as the lecture prints it)
  Moments grad;
  double grad_data_ratio = 0;  // grad std / data std
  Histogram hist;    // of the gradient (the lecture's cell 17 plots these)
  std::optional<double> update_data_log10;  // log10(std(update) / std(data)); when updated
};

struct SaturationMap {
  int layer = -1, rows = 0, cols = 0;
  std::string type;  // the layer's class name ("Tanh"); files written before it was recorded: Tanh
  std::string bits;  // row-major '0' / '1', '1' where |u| > 0.99
};

struct Snapshot {
  int64_t step = 0;
  float loss = 0;
  double lr = 0;
  int batch = 0;
  bool updated = false;  // the step's optimizer update happened (update ratios are valid)
  std::vector<LayerDiag> layers;  // model.stack()'s layers
  std::vector<LayerDiag> inner;   // the layers inside its blocks (Residual branches), in forward order
  std::vector<ParamDiag> params;
  SaturationMap saturation_map;  // first bounded activation
};

// The snapshot's layers in forward order: each stack layer followed by the layers inside it.
std::vector<const LayerDiag*> layers_in_order(const Snapshot& s);

// update:data of every trainable parameter at one step, in ParamStore order.
struct UpdateRatios {
  int64_t step = 0;
  std::vector<double> log10;  // NaN where the data std or the update is 0
};

// ---- the observer ---------------------------------------------------------------------------
struct DiagOptions {
  int64_t every = 1000;    // full snapshot when step % every == 0; 0: none periodic
  int64_t last_step = -1;  // also snapshot this step (the run's last), -1: none
  int bins = 50;
  // update:data ratios (cheap, no histograms): every step below ratio_dense_steps, then
  // every ratio_every-th step. ratio_every 0: only at snapshot steps.
  int64_t ratio_dense_steps = 1000;
  int64_t ratio_every = 100;
  // Dead units over a larger sample: this many training examples, evenly spaced through the
  // (already shuffled) training split, in train mode with batch statistics, run through a
  // twin of the model (a copy of its parameters and running statistics), so the training
  // model is not touched. 0 or no examples: skipped.
  int sample = 1000;
  const Examples* sample_from = nullptr;
  const Config* config = nullptr;  // to build the twin; the Trainer's when attached to one
};

// Records snapshots and update ratios at the chosen steps; on other steps each hook is a
// comparison (and the loss is kept). Only reads the model.
class DiagObserver : public Observer {
 public:
  explicit DiagObserver(DiagOptions opt) : opt_(opt) {}
  std::function<void(const Snapshot&)> on_snapshot;          // e.g. a diagnostics.jsonl line
  std::function<void(const UpdateRatios&, const ParamStore&)> on_ratios;  // update_ratio.jsonl

  void after_forward(Trainer& t, int64_t step, float loss) override;
  void after_backward(Trainer& t, int64_t step) override;
  void after_update(Trainer& t, int64_t step, double lr) override;

  // The same three stages without a Trainer (inspecting a saved model): capture_update with
  // updated = false finishes a snapshot where no update took place.
  void capture_forward(Model& model, int64_t step, float loss);
  void capture_backward(Model& model, int64_t step);
  void capture_update(Model& model, int64_t step, double lr, bool updated);

  bool snapshot_step(int64_t step) const;
  bool ratio_step(int64_t step) const;
  const std::optional<Snapshot>& last() const { return last_; }
  const std::vector<float>& losses() const { return losses_; }  // every step seen
  // A resumed run's history so far (metrics.jsonl's losses, update_ratio.jsonl's ratios), so
  // its final report looks back over the whole run.
  void set_history(std::vector<float> losses, std::vector<UpdateRatios> ratios) {
    losses_ = std::move(losses);
    ratios_ = std::move(ratios);
  }
  const std::vector<UpdateRatios>& ratios() const { return ratios_; }

 private:
  DiagOptions opt_;
  std::vector<float> losses_;
  std::vector<UpdateRatios> ratios_;
  std::optional<Snapshot> current_, last_;
  FloatBuf before_;   // parameter values before the update
  bool have_before_ = false;
  const Config* trainer_config_ = nullptr;
  std::unique_ptr<Model> twin_;  // the sample pass's copy of the model
  std::vector<int32_t> sample_x_, sample_y_;
  void sample_pass(Model& model);
};

// ---- the doctor -----------------------------------------------------------------------------
struct Finding {
  std::string id;  // stable: overconfident-output, saturated-activations, dead-units, ...
  int layer = -1;  // stack index, -1 when not about one layer
  std::string message, evidence, fix;
};

struct Report {
  std::string name;        // preset / config name
  int vocab_size = 0;
  double expected_loss = 0;             // ln(vocab): a uniform guess
  std::optional<double> initial_loss;   // the first minibatch's loss at initialization
  int64_t steps_trained = 0;            // updates before the measured step
  Snapshot snapshot;
  std::vector<float> losses;            // per step, when known
  std::vector<UpdateRatios> ratios;     // when steps ran
  std::vector<Finding> findings;
};

// Thresholds, named so tests and docs quote the same numbers.
namespace doctor {
inline constexpr double kOverconfidentExcess = 1.0;  // initial loss > ln(V) + 1
// |t| > 0.99 share of a Tanh layer. Kaiming init (std 5/3) leaves ~10% there, which the
// lecture calls fine; the N(0,1) network has ~62%.
inline constexpr double kSaturatedPct = 25.0;
inline constexpr double kDepthFactor = 10.0;          // std ratio between first and last layer
// log10 update:data: the lecture aims for ~-3; its healthy deep network still has its last
// Linear at -1.94 after 1000 steps, so "too fast" starts at -1.5.
inline constexpr double kUpdateLow = -4.0, kUpdateHigh = -1.5;
inline constexpr int kUpdateWindow = 100;             // recorded steps averaged per parameter
}  // namespace doctor

std::vector<Finding> diagnose(const Report& r, const Model& model);

// The inspect of a fresh network: initialize from cfg.seed, train `steps` steps as `makemore
// train` would, then measure step `steps` itself (forward, backward and its update), as the
// lecture's loop with a `break` after that step. steps = 0 is the network at initialization
// (update ratios left out). The report comes diagnosed. Throws mm::Error on divergence.
Report inspect_training(const Config& cfg, const Splits& splits, int vocab_size, int64_t steps,
                        std::unique_ptr<Model>* model_out = nullptr);

// Mean loss over consecutive chunks of `bucket` steps (the last chunk may be shorter).
std::vector<double> loss_buckets(const std::vector<float>& losses, std::size_t bucket = 1000);

// JSON as the report and plots read it: a snapshot's `layers`, `params`, `step`, `loss`
// (the saturation map only when asked), and the full report (inspect --json, inspect.json).
nlohmann::json snapshot_json(const Snapshot& s, bool with_saturation_map);
nlohmann::json report_json(const Report& r);
nlohmann::json ratios_json(const UpdateRatios& u, const ParamStore& params);
// A .jsonl file of {"step": ...} records cut to those of steps before `before` (a resumed run
// appends from there; a run killed after its last checkpoint may have written later ones).
// Returns the number of records kept.
int64_t keep_records_before(const std::string& path, int64_t before);
// update_ratio.jsonl read back: the records of steps before `before`, in the order of params'
// trainable parameters (NaN where a record has none). A missing file is no records; a line that
// is not a record is an mm::Error naming the file and line.
std::vector<UpdateRatios> read_update_ratios(const std::string& path, const ParamStore& params, int64_t before);

// The lecture's printed tables, unicode histograms and the findings, as text.
std::string format_report(const Report& r);
std::string sparkline(const Histogram& h, int width = 50);  // ▁▂▃▄▅▆▇█, blank for empty bins

// ---- the run folder -------------------------------------------------------------------------
inline constexpr const char* kDiagnosticsFile = "diagnostics.jsonl";  // a snapshot per line
inline constexpr const char* kUpdateRatioFile = "update_ratio.jsonl";  // {"step", "ratios": {name: log10}}
inline constexpr const char* kInspectFile = "inspect.json";            // report_json of the last step

// What `makemore train --diag-every N` attaches: the observer, streaming its snapshots and
// update ratios into DIR's two .jsonl files, and at the end the full report as inspect.json.
class RunDiagnostics {
 public:
  // append: a resumed run adds to the folder's .jsonl files.
  RunDiagnostics(const std::string& dir, DiagOptions opt, bool append = false);
  ~RunDiagnostics();
  RunDiagnostics(const RunDiagnostics&) = delete;
  RunDiagnostics& operator=(const RunDiagnostics&) = delete;
  DiagObserver& observer() { return obs_; }
  // Flushes the .jsonl files, diagnoses the last snapshot and writes DIR/inspect.json.
  Report write_inspect(const Model& model, const std::string& name, int vocab_size);
  // A run without diagnostics must not leave an older run's files behind.
  static void remove_stale(const std::string& dir);
  void flush();  // the .jsonl files so far onto disk (a periodic checkpoint)

 private:
  std::string dir_;
  DiagObserver obs_;
  FILE* snap_ = nullptr;
  FILE* ratio_ = nullptr;
};

}  // namespace mm
