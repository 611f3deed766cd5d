// A network and its training as data: the config file (JSON; // comments allowed) that users
// copy from a preset and edit. Parsing validates every field and names the bad one.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "makemore/init.h"
#include "makemore/layers.h"

namespace mm {

struct LayerSpec {
  // "linear", "batchnorm1d", "tanh", "flatten", "layernorm", "groupnorm", "relu", "gelu", "residual"
  std::string type;
  int out = 0;               // linear: fan_out; 0 with out_is_vocab
  bool out_is_vocab = false; // linear: "out": "vocab"
  bool bias = true;
  InitSpec weight_init{InitSpec::Kind::Kaiming};
  InitSpec bias_init{InitSpec::Kind::Zeros};
  BatchNormOptions bn;
  int flatten_n = 0;         // flatten: consecutive steps to merge (0 = all)
  NormOptions norm;          // layernorm (groups 1), groupnorm
  bool gelu_tanh = false;    // gelu: "approximate": "tanh"
  std::vector<LayerSpec> layers;  // residual: the branch f of x + f(x)
};

// Calls fn on every spec of the list and, depth first, of each residual branch inside it.
void for_each_spec(const std::vector<LayerSpec>& specs, const std::function<void(const LayerSpec&)>& fn);

struct LrSchedule {
  std::vector<double> values{0.1};       // values[i] applies from boundaries[i-1] on
  std::vector<int64_t> boundaries;       // ascending step numbers
  double at(int64_t step) const;
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
  std::string optimizer = "sgd";
  LrSchedule lr;
  bool calibrate_batchnorm = false;  // after training, running stats := whole-train-set stats

  nlohmann::json to_json() const;
};

// source names the file (or preset) in error messages: "my.json: train.steps: must be > 0".
Config parse_config(const nlohmann::json& j, const std::string& source);
Config load_config_file(const std::string& path);
nlohmann::json parse_json_text(const std::string& text, const std::string& source);

InitSpec parse_init(const nlohmann::json& j, const std::string& where);
nlohmann::json init_to_json(const InitSpec& spec);

}  // namespace mm
