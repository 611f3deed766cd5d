// The doctor: turns a snapshot of one step (snapshot.h) into findings, each with its evidence and
// a fix in the config's own terms. One rule per finding id (doctor_rules()), all reading one walk
// of the layer tree; what a rule knows about a layer comes from its kind's traits (a bounded
// activation, a normalization, a Linear's fan_in). Writing a diagnosis out is diag_io.h's.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "makemore/config.h"
#include "makemore/data.h"
#include "makemore/model.h"
#include "makemore/snapshot.h"

namespace mm {

struct Finding {
  std::string id;  // stable: a rule's id (doctor_rules())
  int layer = -1;  // stack index, -1 when not about one layer
  std::string message, evidence, fix;
};

// What the doctor examined and found: one measured step, the run's history around it, and
// the findings (inspect.json holds it; `makemore inspect` prints it).
struct Diagnosis {
  std::string name;  // preset / config name
  int vocab_size = 0;
  double expected_loss = 0;            // ln(vocab): a uniform guess
  std::optional<double> initial_loss;  // the first minibatch's loss at initialization
  int64_t steps_trained = 0;           // updates before the measured step
  Snapshot snapshot;
  std::vector<float> losses;         // per step, when known
  std::vector<UpdateRatios> ratios;  // when steps ran
  std::vector<Finding> findings;
};

namespace doctor {
inline constexpr double kOverconfidentExcess = 1.0;  // initial loss > ln(V) + 1
// |t| > 0.99 share of a Tanh layer. Kaiming init (std 5/3) leaves ~10% there, which the
// lecture calls fine; the N(0,1) network has ~62%.
inline constexpr double kSaturatedPct = 25.0;
inline constexpr double kDepthFactor = 10.0;  // std ratio between first and last layer
// log10 update:data: the lecture aims for ~-3; its healthy deep network still has its last
// Linear at -1.94 after 1000 steps, so "too fast" starts at -1.5.
inline constexpr double kUpdateLow = -4.0, kUpdateHigh = -1.5;
inline constexpr int kUpdateWindow = 100;  // recorded steps averaged per parameter
}  // namespace doctor

// What every rule reads: the diagnosis so far, the model, and one walk of its layer tree, with
// each snapshot layer's place in it.
struct Exam {
  Exam(const Diagnosis& d, const Model& m);
  const Diagnosis& d;
  const Model& model;
  std::vector<LayerSite> sites;                        // walk_layers(model)
  std::vector<const LayerDiag*> layers;                // the snapshot's layers in forward order
  const LayerSite* site_of(const LayerDiag& l) const;  // nullptr if the model has no such layer
};

// A rule: its finding id, what it looks at (for docs and --help), and the function that
// returns its findings (none when healthy). Adding a finding is one function and one row here.
struct DoctorRule {
  const char* id;
  const char* looks_at;
  std::vector<Finding> (*find)(const Exam& e);
};
const std::vector<DoctorRule>& doctor_rules();

// Every rule's findings, in the table's order.
std::vector<Finding> diagnose(const Diagnosis& d, const Model& model);

// The inspect of a fresh network: initialize from cfg.seed, train `steps` steps as `makemore
// train` would, then measure step `steps` itself (forward, backward and its update), as the
// lecture's loop with a `break` after that step. steps = 0 is the network at initialization
// (update ratios left out). The diagnosis comes with its findings. Throws mm::Error on divergence.
Diagnosis inspect_training(const Config& cfg, const Splits& splits, int vocab_size, int64_t steps,
                           std::unique_ptr<Model>* model_out = nullptr);

}  // namespace mm
