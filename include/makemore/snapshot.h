// The diagnostics' observer and what it records: the lecture's cells 15-18 as an observer of the
// training loop. Per layer the output (and for a bounded activation the pre-activation) mean /
// std / saturation / histogram and the gradient flowing into its output; per parameter the
// gradient and grad:data ratio; per step the update:data ratio log10(std(update) / std(data)) of
// what the optimizer applied. It only reads what the step computed. The doctor (doctor.h) judges
// a snapshot; writing it out is diag_io.h's.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "makemore/data.h"
#include "makemore/model.h"
#include "makemore/stats.h"
#include "makemore/train.h"

namespace mm {

// ---- a snapshot of one step -----------------------------------------------------------------
// Saturation fields are computed for every layer, but only mean something for a bounded
// activation (its kind's traits: Tanh, Sigmoid), where they are taken on the output mapped onto
// [-1, 1]; dead units are counted for bounded activations only (0 elsewhere).
struct LayerDiag {
  const LayerKind* kind = nullptr;  // the layer's registry entry (its traits)
  bool bounded() const;             // a bounded activation
  int index = 0;                    // position in model.stack(), as the lecture numbers its layers; for a
                                    // layer inside a block (a Residual's branch), the block's position
  std::string name;                 // "2", or "2.1" for layer 1 of the branch of stack layer 2
  std::string type;                 // "Linear", "BatchNorm1d", "Tanh" ...: kind's class name, as JSON records it
  std::string describe;             // "Linear(30, 100, bias=False)"
  int units = 0;                    // output features
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
  bool has_pre = false;  // a bounded activation: its input, the pre-activation
  Moments pre;
  Histogram pre_hist;
};

struct ParamDiag {
  std::string name;  // "layers.0.weight"
  int rows = 0, cols = 0;
  bool is_1d = false;
  Moments data;  // after the step's update when there was one (as the lecture prints it)
  Moments grad;
  double grad_data_ratio = 0;               // grad std / data std
  Histogram hist;                           // of the gradient (the lecture's cell 17 plots these)
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
  bool updated = false;           // the step's optimizer update happened (update ratios are valid)
  std::vector<LayerDiag> layers;  // model.stack()'s layers
  std::vector<LayerDiag> inner;   // the layers inside its blocks (Residual branches), in forward order
  std::vector<ParamDiag> params;
  SaturationMap saturation_map;  // first bounded activation
};

// Where a layer's output is saturated: 1 where |u| > 0.99 on its kind's scale (a bounded
// activation's bounds mapped onto [-1, 1]; |out| for any other kind), row-major like `out`. The
// saturation map's bits; Python's inspect() returns it for every layer.
std::vector<uint8_t> saturation_mask(const Mat& out, const LayerKind& kind);

// The snapshot's layers in forward order: each stack layer followed by the layers inside it.
std::vector<const LayerDiag*> layers_in_order(const Snapshot& s);

// One layer of the model's tree, in forward order: a stack layer, or one inside a block (a
// Residual's branch, nested ones included). The one walk the observer and the doctor share.
struct LayerSite {
  const Layer* layer = nullptr;
  const Sequential* owner = nullptr;  // the stack, or the branch holding it
  std::size_t pos = 0;                // its position in owner
  int top = 0;                        // the stack position of the block it is in (its own for a stack layer)
  std::string name;                   // "2", or "2.1": layer 1 of the branch of stack layer 2
  bool in_block() const { return name.find('.') != std::string::npos; }
  const Mat* input() const;                             // the last forward's input to it
  const Mat& dout() const { return owner->dout(pos); }  // dL/d(its output), after a backward
};
std::vector<LayerSite> walk_layers(const Model& model);

// update:data of every trainable parameter at one step, in ParamStore order.
struct UpdateRatios {
  int64_t step = 0;
  std::vector<double> log10;  // NaN where the data std or the update is 0
};

// ---- the observer ---------------------------------------------------------------------------
struct DiagOptions {
  int64_t every = 1000;    // full snapshot when step % every == 0; 0: none periodic
  int64_t last_step = -1;  // also snapshot this step (the run's last), -1: none
  int bins = 50;           // each histogram's bins; 0: no histograms (their counts stay empty)
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
  std::function<void(const Snapshot&)> on_snapshot;                       // e.g. a diagnostics.jsonl line
  std::function<void(const UpdateRatios&, const ParamStore&)> on_ratios;  // update_ratio.jsonl

  void after_forward(Trainer& t, int64_t step, float loss) override;
  void after_backward(Trainer& t, int64_t step) override;
  bool watches_backward(int64_t step) const override { return current_.has_value() || ratio_step(step); }
  bool watches_forward(int64_t step) const override { return snapshot_step(step); }
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
  FloatBuf before_;  // parameter values before the update
  bool have_before_ = false;
  const Config* trainer_config_ = nullptr;
  std::unique_ptr<Model> twin_;  // the sample pass's copy of the model
  std::vector<int32_t> sample_x_, sample_y_;
  void sample_pass(Model& model);
};

}  // namespace mm
