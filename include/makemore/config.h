// A network and its training as data: the config file (JSON; // comments allowed) that users
// copy from a preset and edit. Parsing validates every field and names the bad one.
#pragma once
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "makemore/init.h"
#include "makemore/json_text.h"
#include "makemore/layers.h"

namespace mm {

struct LayerKind;  // layer_kinds.h

// One configured layer: its kind (a registry entry) and the options of the kinds that have
// them; each kind's entry reads, writes and uses its own (src/layers.cpp).
struct LayerSpec {
  const LayerKind* kind = nullptr;
  int out = 0;                     // linear: fan_out; 0 with out_is_vocab
  bool out_is_vocab = false;       // linear: "out": "vocab"
  bool bias = true;                // linear: the bias is part of the network
  bool bias_drawn_unused = false;  // linear: "bias": "drawn-unused" (bias false, yet bias_init draws)
  InitSpec weight_init{InitSpec::Kind::Kaiming};
  InitSpec bias_init{InitSpec::Kind::Zeros};
  BatchNormOptions bn;
  int flatten_n = 0;              // flatten: consecutive steps to merge (0 = all)
  NormOptions norm;               // layernorm (groups 1), groupnorm
  bool gelu_tanh = false;         // gelu: "approximate": "tanh"
  double dropout_p = 0.5;         // dropout: the chance of zeroing a unit in training (torch's default)
  std::vector<LayerSpec> layers;  // residual: the branch f of x + f(x)
};

// Calls fn on every spec of the list and, depth first, of each residual branch inside it.
void for_each_spec(const std::vector<LayerSpec>& specs, const std::function<void(const LayerSpec&)>& fn);
// A stack that starts with a flatten receives the embedding as a sequence: block_size rows of
// n_embd per example, so {"type": "flatten", "n": 2} merges pairs of positions (the WaveNet of
// makemore part 5). Otherwise the context arrives flattened: one row of block_size * n_embd.
bool stack_takes_sequence(const std::vector<LayerSpec>& layers);

// The learning rate at each step (docs/optim.md has the formulas). kind Step: the lecture's
// piecewise constant schedule, values[i] from boundaries[i-1] on; kind Cosine: from max down to
// min along half a cosine, reaching min at the run's last step + 1 (train.steps). Either kind
// may start with a linear warmup over `warmup` steps: the scheduled value times (s+1)/warmup.
struct LrSchedule {
  enum class Kind { Step, Cosine };
  Kind kind = Kind::Step;
  std::vector<double> values{0.1};  // step: values[i] applies from boundaries[i-1] on
  std::vector<int64_t> boundaries;  // step: ascending step numbers
  double max = 0, min = 0;          // cosine
  int64_t warmup = 0;               // steps of linear warmup (0: none)
  // total_steps: train.steps, where the cosine reaches min.
  double at(int64_t step, int64_t total_steps) const;
};

// torch.optim's optimizers with their PyTorch defaults; which fields apply depends on type.
// The optimizer rules (optim.cpp). Their config names ("sgd", "rmsprop", "adam", "adamw") and
// settings are listed once, in config.cpp's table: optimizer_name / optimizer_kind.
enum class OptimizerKind { Sgd, Rmsprop, Adam, AdamW };
const char* optimizer_name(OptimizerKind kind);
std::optional<OptimizerKind> optimizer_kind(std::string_view name);  // nullopt: no such optimizer

struct OptimizerSpec {
  OptimizerKind kind = OptimizerKind::Sgd;
  double momentum = 0;                // sgd, rmsprop
  double dampening = 0;               // sgd
  bool nesterov = false;              // sgd
  double alpha = 0.99;                // rmsprop: smoothing of square_avg
  bool centered = false;              // rmsprop
  double beta1 = 0.9, beta2 = 0.999;  // adam, adamw
  double eps = 1e-8;                  // rmsprop, adam, adamw
  double weight_decay = 0;            // all; adamw's default is 0.01
  bool amsgrad = false;               // adam, adamw
  // The defaults of the kind (adamw: weight_decay 0.01).
  static OptimizerSpec defaults(OptimizerKind kind);
  const char* name() const { return optimizer_name(kind); }
  bool is_adam() const { return kind == OptimizerKind::Adam || kind == OptimizerKind::AdamW; }
  // Plain SGD: the lecture's `p.data += -lr * p.grad`, kept bit for bit.
  bool is_plain_sgd() const { return kind == OptimizerKind::Sgd && momentum == 0 && weight_decay == 0; }
  bool operator==(const OptimizerSpec&) const = default;
};

struct Config {
  std::string name = "custom";
  std::string description;
  // data
  int block_size = 3;
  uint64_t split_seed = 42;
  // model: Embedding(vocab, n_embd) -> Flatten -> layers -> softmax cross-entropy
  int n_embd = 10;
  InitSpec embedding_init{InitSpec::Kind::Normal};
  std::vector<LayerSpec> layers;
  // training
  int64_t steps = 200000;
  int batch_size = 32;
  uint64_t seed = 2147483647ULL;
  OptimizerSpec optimizer;
  LrSchedule lr;
  double clip_grad_norm = 0;         // > 0: clip the global L2 norm of the gradients to this
  bool calibrate_batchnorm = false;  // after training, running stats := whole-train-set stats

  double lr_at(int64_t step) const { return lr.at(step, steps); }

  nlohmann::json to_json() const;
};

// source names the file (or preset) in error messages: "my.json: train.steps: must be > 0".
Config parse_config(const nlohmann::json& j, const std::string& source);
Config load_config_file(const std::string& path);

InitSpec parse_init(const nlohmann::json& j, const std::string& where);
nlohmann::json init_to_json(const InitSpec& spec);

// What `train` may change on a preset or config file (negative or empty: keep), applied and
// then validated again as a whole; `source` names the preset or file in errors.
struct TrainOverrides {
  int64_t steps = -1, seed = -1, split_seed = -1;
  int batch_size = -1;
  std::string optimizer;  // a type name: that optimizer with PyTorch's defaults
  double lr = -1;         // a constant learning rate
  bool calibrate = false;
};
Config apply_overrides(const Config& cfg, const TrainOverrides& o, const std::string& source);

}  // namespace mm
