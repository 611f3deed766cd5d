// The layer registry: every layer kind a config can name, each defined in one place (its entry,
// beside the layer's code in src/layers.cpp): the config name, the options it reads from JSON
// and writes back, how it changes the shape, the factory, and its traits ("activation, bounded
// to [-1, 1]", "normalization", "has running statistics", the Kaiming gain). Code that needs to
// know something about a kind asks its traits; nothing outside the registry compares a kind's
// name. Parsing a whole config (config.cpp) and building a model (model.cpp) are left to their
// owners; this header is what they and each entry share.
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "makemore/config.h"
#include "makemore/init.h"
#include "makemore/layers.h"

namespace mm {

enum class LayerRole {
  Matmul,          // Linear: its own fan_in / fan_out
  Normalization,   // BatchNorm1d, LayerNorm, GroupNorm: its gamma / beta set the output's scale
  Activation,      // an elementwise nonlinearity
  Gather,          // Embedding, Flatten: move numbers, compute nothing
  Block,           // Residual: a branch of other layers
  Regularization,  // Dropout: active in training only
};
const char* role_name(LayerRole role);  // "matmul", "normalization", "activation", "gather", ...

struct LayerTraits {
  LayerRole role = LayerRole::Activation;
  // An activation whose outputs lie in [lo, hi] (tanh [-1, 1], sigmoid [0, 1]). Its units
  // saturate near the bounds, where the local gradient vanishes: the doctor and the report
  // measure saturation and dead units on every such layer (diag.h says how).
  struct Bounds {
    double lo, hi;
  };
  std::optional<Bounds> bounds = {};
  // torch.nn.init.calculate_gain for this nonlinearity: "gain": "<name>" in a Kaiming or Xavier
  // init means this number (tanh 5/3, relu sqrt 2, sigmoid 1; a linear layer 1).
  std::optional<double> kaiming_gain = {};
  bool running_stats = false;   // normalizes by batch statistics in training (at least 2 rows)
  bool stochastic = false;      // draws from the run's generator in training (ForwardContext::gen)
  bool after_output = false;    // may follow the output linear (the lecture's last BatchNorm1d)
  bool takes_sequence = false;  // a stack starting with it gets the embedding as a sequence
  // What its backward reads of the forward (ForwardContext::scratch_outputs): its own output
  // (tanh's 1 - out^2), its input (a Linear's x^T dout). Where neither this layer's backward
  // reads its output nor the next layer's backward reads its input, that output is needed only
  // by the next layer's forward.
  bool backward_reads_output = true;
  bool backward_reads_input = true;
};

// Reads one layer's options from its JSON object; every getter names the field on error
// ("my.json: model.layers[2].eps: must be between 0 and 1, got 3"). Implemented by config.cpp.
class LayerOptionReader {
 public:
  LayerOptionReader(const nlohmann::json& j, std::string where, const std::string& source, int nesting)
      : j_(j), where_(std::move(where)), source_(source), nesting_(nesting) {}
  bool has(const char* key) const { return j_.contains(key); }
  const nlohmann::json& at(const char* key) const { return j_[key]; }
  const std::string& where() const { return where_; }
  std::string field(const char* key) const { return where_ + "." + key; }
  int nesting() const { return nesting_; }  // residual blocks around this layer
  int64_t integer(const char* key, int64_t lo, int64_t hi) const;
  double number(const char* key, double lo, double hi) const;
  bool boolean(const char* key) const;
  std::string string(const char* key) const;
  // Use: as config.cpp's InitUse (a norm layer's vector, a bias, a matrix, a Linear's weight).
  enum class InitUse { Vector, Bias, Matrix, LinearWeight };
  InitSpec init(const char* key, InitUse use) const;
  // A nested list of layers (a residual's branch), each parsed as a config layer.
  std::vector<LayerSpec> layers(const char* key) const;
  [[noreturn]] void fail(const std::string& field, const std::string& what) const;

 private:
  const nlohmann::json& j_;
  std::string where_;
  const std::string& source_;
  int nesting_;
};

// (time, features) followed through the layers when a config is parsed, so that shape errors
// name the config field; features -1: unknown until the model is built (a linear with "out":
// "vocab"). fail() names the layer's option `key` ("model.layers[3].groups").
struct ShapeCheck {
  int time = 1, features = 0;
  std::string where;  // "model.layers[3]"
  const std::string* source = nullptr;
  [[noreturn]] void fail(const char* key, const std::string& what) const;
};

// What a factory gets besides the spec.
struct LayerBuild {
  int vocab_size = 0;
  std::string where;  // the spec's config path, named by shape errors found at build
};

struct LayerKind {
  const char* name = "";        // the config's "type": "tanh"
  const char* class_name = "";  // the lecture's (PyTorch's) class name: Layer::type(), "type" in diagnostics
  const char* summary = "";     // one line for listings
  LayerTraits traits = {};
  std::vector<std::string> keys = {};  // the options besides "type"
  // Each may be null: no options / nothing to write / shape unchanged.
  void (*parse)(const LayerOptionReader& r, LayerSpec& s) = nullptr;
  void (*write)(const LayerSpec& s, nlohmann::json& j) = nullptr;
  void (*shape)(const LayerSpec& s, ShapeCheck& c) = nullptr;
  std::unique_ptr<Layer> (*make)(const LayerSpec& s, const LayerBuild& b) = nullptr;
  // Option objects (JSON text, "type" left out) the gradient check builds this kind from, on an
  // input of 2 positions x 6 features: every kind is checked (tests/test_gradcheck.cpp).
  std::vector<std::string> examples = {};

  bool bounded() const { return traits.bounds.has_value(); }
  bool is(LayerRole r) const { return traits.role == r; }
};

// Every kind, in the order listings show them. Defined with the entries, in src/layers.cpp.
const std::vector<const LayerKind*>& layer_kinds();
// By config name ("tanh") or class name ("Tanh", as diagnostics JSON records it); nullptr if none.
const LayerKind* find_layer_kind(std::string_view name);
const LayerKind* find_layer_kind_by_class(std::string_view class_name);
// "linear, batchnorm1d, ... or residual": for error messages.
std::string layer_kind_names();

// One config layer ({"type": ..., options}) parsed through its kind's entry; nesting counts the
// residual blocks around it.
LayerSpec parse_layer_spec(const nlohmann::json& j, const std::string& where, const std::string& source, int nesting = 0);
nlohmann::json layer_spec_json(const LayerSpec& s);
// Follows (time, features) through specs, each named where[i]; throws mm::Error naming the field.
void check_layer_shapes(const std::vector<LayerSpec>& specs, const std::string& where, const std::string& source, int& time,
                        int& features);

}  // namespace mm
