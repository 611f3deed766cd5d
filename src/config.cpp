// Parsing and writing config files. Every field is checked and unknown keys are rejected, so
// a typo ("stpes") is an error naming the field rather than a silently ignored setting.
#include "makemore/config.h"

#include <fmt/format.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <numbers>
#include <set>
#include <sstream>
#include <stdexcept>

#include "makemore/error.h"
#include "makemore/layer_kinds.h"

namespace mm {

using json = nlohmann::json;

double LrSchedule::at(int64_t step, int64_t total_steps) const {
  double lr;
  if (kind == Kind::Cosine) {
    // Half a cosine from max (at the end of warmup) to min (at total_steps).
    const auto span = static_cast<double>(total_steps - warmup);
    double progress = span > 0 ? static_cast<double>(step - warmup) / span : 0.0;
    progress = std::clamp(progress, 0.0, 1.0);
    lr = min + 0.5 * (max - min) * (1.0 + std::cos(std::numbers::pi * progress));
  } else {
    std::size_t i = 0;
    while (i < boundaries.size() && step >= boundaries[i]) ++i;
    lr = values[i];
  }
  if (step < warmup) lr *= static_cast<double>(step + 1) / static_cast<double>(warmup);
  return lr;
}

namespace {
// Each optimizer's config name and the settings its object form takes.
struct OptimizerEntry {
  OptimizerKind kind;
  const char* name;
  std::set<std::string> keys;
};
const std::vector<OptimizerEntry>& optimizer_table() {
  static const std::vector<OptimizerEntry> t = {
      {OptimizerKind::Sgd, "sgd", {"type", "momentum", "dampening", "nesterov", "weight_decay"}},
      {OptimizerKind::Rmsprop, "rmsprop", {"type", "alpha", "eps", "momentum", "centered", "weight_decay"}},
      {OptimizerKind::Adam, "adam", {"type", "betas", "eps", "weight_decay", "amsgrad"}},
      {OptimizerKind::AdamW, "adamw", {"type", "betas", "eps", "weight_decay", "amsgrad"}},
  };
  return t;
}
const OptimizerEntry& optimizer_entry(OptimizerKind kind) {
  for (const auto& e : optimizer_table())
    if (e.kind == kind) return e;
  throw std::logic_error("optimizer kind missing from optimizer_table()");
}
}  // namespace

const char* optimizer_name(OptimizerKind kind) { return optimizer_entry(kind).name; }

std::optional<OptimizerKind> optimizer_kind(std::string_view name) {
  for (const auto& e : optimizer_table())
    if (name == e.name) return e.kind;
  return std::nullopt;
}

OptimizerSpec OptimizerSpec::defaults(OptimizerKind kind) {
  OptimizerSpec s;
  s.kind = kind;
  if (kind == OptimizerKind::AdamW) s.weight_decay = 0.01;
  return s;
}

namespace {

struct Ctx {
  const std::string& source;
  // A field name or value echoed from the file may be huge: every message stays one short line.
  [[noreturn]] void fail(const std::string& where, const std::string& what) const {
    throw Error(fmt::format("{}: {}: {}", source, text_excerpt(where, 120), text_excerpt(what, 400)));
  }
};

void check_keys(const Ctx& c, const json& j, const std::string& where, std::set<std::string> allowed) {
  if (!j.is_object()) c.fail(where.empty() ? "top level" : where, "must be an object");
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (!allowed.count(it.key())) {
      std::string list;
      for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
      c.fail(where.empty() ? it.key() : where + "." + it.key(), "unknown field; allowed here: " + list);
    }
  }
}

int64_t get_int(const Ctx& c, const json& j, const std::string& where, int64_t lo, int64_t hi) {
  if (!j.is_number_integer() &&
      !(j.is_number_float() && std::floor(j.get<double>()) == j.get<double>() && std::fabs(j.get<double>()) < 9e15))
    c.fail(where, fmt::format("must be an integer, got {}", json_excerpt(j)));
  // An unsigned value beyond int64 (2^63) must not wrap to a negative one in the message.
  if (j.is_number_unsigned() && j.get<uint64_t>() > static_cast<uint64_t>(hi))
    c.fail(where, fmt::format("must be between {} and {}, got {}", lo, hi, j.get<uint64_t>()));
  const int64_t v = j.is_number_integer() ? j.get<int64_t>() : static_cast<int64_t>(j.get<double>());
  if (v < lo || v > hi) c.fail(where, fmt::format("must be between {} and {}, got {}", lo, hi, v));
  return v;
}

uint64_t get_seed(const Ctx& c, const json& j, const std::string& where) {
  if (j.is_number_unsigned()) return j.get<uint64_t>();
  if (j.is_number_integer() && j.get<int64_t>() >= 0) return static_cast<uint64_t>(j.get<int64_t>());
  c.fail(where, fmt::format("must be a non-negative integer, got {}", json_excerpt(j)));
}

double get_num(const Ctx& c, const json& j, const std::string& where, double lo, double hi) {
  if (!j.is_number()) c.fail(where, fmt::format("must be a number, got {}", json_excerpt(j)));
  const double v = j.get<double>();
  if (!std::isfinite(v) || v < lo || v > hi)
    c.fail(where, fmt::format("must be between {} and {}, got {}", lo, hi, json_excerpt(j)));
  return v;
}

bool get_bool(const Ctx& c, const json& j, const std::string& where) {
  if (!j.is_boolean()) c.fail(where, fmt::format("must be true or false, got {}", json_excerpt(j)));
  return j.get<bool>();
}

std::string get_str(const Ctx& c, const json& j, const std::string& where) {
  if (!j.is_string()) c.fail(where, fmt::format("must be a string, got {}", json_excerpt(j)));
  return j.get<std::string>();
}

// Where an initialization is used decides which schemes make sense: Xavier needs a matrix's
// fan_in and fan_out, LSUV rescales a Linear's weight from its output.
// A norm layer's gamma / beta have no fan_in: Kaiming and torch's Linear default (which scale
// by the layer's fan_in) make sense for a Linear's bias but not there.
using InitUse = LayerOptionReader::InitUse;

InitSpec parse_init_ctx(const Ctx& c, const json& j, const std::string& where, InitUse use = InitUse::Vector) {
  InitSpec s;
  std::string kind;
  json obj = j;
  if (j.is_string()) {
    obj = json{{"kind", j}};
  }
  check_keys(c, obj, where, {"kind", "scale", "gain", "value", "batch", "tol", "max_iter"});
  const char* kinds = "zeros, ones, constant, normal, kaiming, torch-default, xavier-normal, xavier-uniform or lsuv";
  if (!obj.contains("kind")) c.fail(where + ".kind", fmt::format("missing; one of {}", kinds));
  kind = get_str(c, obj["kind"], where + ".kind");
  using K = InitSpec::Kind;
  if (kind == "zeros")
    s.kind = K::Zeros;
  else if (kind == "ones")
    s.kind = K::Ones;
  else if (kind == "constant")
    s.kind = K::Constant;
  else if (kind == "normal")
    s.kind = K::Normal;
  else if (kind == "kaiming")
    s.kind = K::Kaiming;
  else if (kind == "torch-default")
    s.kind = K::TorchLinear;
  else if (kind == "xavier-normal")
    s.kind = K::XavierNormal;
  else if (kind == "xavier-uniform")
    s.kind = K::XavierUniform;
  else if (kind == "lsuv")
    s.kind = K::Lsuv;
  else
    c.fail(where + ".kind", fmt::format("unknown initialization '{}'; use {}", kind, kinds));
  if (s.kind == K::Lsuv && use != InitUse::LinearWeight)
    c.fail(where + ".kind", "lsuv is only for a linear layer's \"weight_init\" (it rescales that layer's output)");
  if (use == InitUse::Vector && (s.kind == K::Kaiming || s.kind == K::TorchLinear))
    c.fail(where + ".kind", fmt::format("{} scales by a layer's fan_in, which a norm layer's gamma / beta do not have; "
                                        "use ones, zeros, constant or normal",
                                        kind));
  if (needs_matrix(s.kind) && (use == InitUse::Vector || use == InitUse::Bias))
    c.fail(where + ".kind", fmt::format("{} needs a weight matrix (fan_in and fan_out); use it for a \"weight_init\" or "
                                        "\"embedding_init\"",
                                        kind));
  const bool xavier = s.kind == K::XavierNormal || s.kind == K::XavierUniform;
  if (xavier) s.gain = "linear";  // torch.nn.init.xavier_*'s default gain 1
  if (s.kind == K::Constant && !obj.contains("value"))
    c.fail(where + ".value", "missing; kind constant needs the value to fill with (e.g. \"value\": 0.5)");
  if (obj.contains("scale")) {
    if (s.kind == K::Lsuv) c.fail(where + ".scale", "not for kind lsuv (its data pass sets the scale)");
    if (s.kind == K::Zeros) c.fail(where + ".scale", "has no effect on zeros; use kind constant with a value, or drop it");
    s.scale = get_num(c, obj["scale"], where + ".scale", -1e6, 1e6);
  }
  if (obj.contains("value")) {
    if (s.kind != K::Constant) c.fail(where + ".value", "only for kind constant");
    s.value = get_num(c, obj["value"], where + ".value", -1e6, 1e6);
  }
  if (obj.contains("gain")) {
    if (s.kind != K::Kaiming && !xavier) c.fail(where + ".gain", "only for kind kaiming, xavier-normal or xavier-uniform");
    s.gain = obj["gain"].is_number() ? fmt::format("{}", obj["gain"].get<double>()) : get_str(c, obj["gain"], where + ".gain");
    try {
      kaiming_gain(s.gain);
    } catch (const Error& e) {
      c.fail(where + ".gain", e.what());
    }
  }
  for (const char* key : {"batch", "tol", "max_iter"})
    if (obj.contains(key) && s.kind != K::Lsuv) c.fail(where + "." + key, "only for kind lsuv");
  if (obj.contains("batch")) s.lsuv_batch = static_cast<int>(get_int(c, obj["batch"], where + ".batch", 2, 1 << 20));
  if (obj.contains("tol")) s.lsuv_tol = get_num(c, obj["tol"], where + ".tol", 1e-6, 1);
  if (obj.contains("max_iter")) s.lsuv_max_iter = static_cast<int>(get_int(c, obj["max_iter"], where + ".max_iter", 1, 1000));
  return s;
}

OptimizerSpec parse_optimizer(const Ctx& c, const json& j) {
  const std::string w = "train.optimizer";
  const json obj = j.is_string() ? json{{"type", j}} : j;
  if (!obj.is_object())
    c.fail(w, "must be a name (\"sgd\", \"rmsprop\", \"adam\", \"adamw\") or an object like {\"type\": \"adam\"}");
  if (!obj.contains("type")) c.fail(w + ".type", "missing; one of sgd, rmsprop, adam, adamw");
  const std::string type = get_str(c, obj["type"], w + ".type");
  const std::optional<OptimizerKind> kind = optimizer_kind(type);
  if (!kind)
    c.fail(j.is_string() ? w : w + ".type", fmt::format("unknown optimizer '{}'; use sgd, rmsprop, adam or adamw", type));
  OptimizerSpec s = OptimizerSpec::defaults(*kind);
  check_keys(c, obj, w, optimizer_entry(*kind).keys);
  if (obj.contains("momentum")) s.momentum = get_num(c, obj["momentum"], w + ".momentum", 0, 1);
  if (obj.contains("dampening")) s.dampening = get_num(c, obj["dampening"], w + ".dampening", 0, 1);
  if (obj.contains("nesterov")) s.nesterov = get_bool(c, obj["nesterov"], w + ".nesterov");
  if (obj.contains("alpha")) s.alpha = get_num(c, obj["alpha"], w + ".alpha", 0, 1);
  if (obj.contains("centered")) s.centered = get_bool(c, obj["centered"], w + ".centered");
  if (obj.contains("amsgrad")) s.amsgrad = get_bool(c, obj["amsgrad"], w + ".amsgrad");
  if (obj.contains("eps")) {
    s.eps = get_num(c, obj["eps"], w + ".eps", 0, 1);
    // eps 0 divides 0 by 0 wherever a gradient is exactly zero (and in the buffer padding).
    if (!(s.eps > 0))
      c.fail(w + ".eps", fmt::format("must be > 0 (PyTorch's default is 1e-8), got {}", json_excerpt(obj["eps"])));
  }
  if (obj.contains("weight_decay")) s.weight_decay = get_num(c, obj["weight_decay"], w + ".weight_decay", 0, 1e6);
  if (obj.contains("betas")) {
    const json& b = obj["betas"];
    if (!b.is_array() || b.size() != 2)
      c.fail(w + ".betas", fmt::format("must be a list of two numbers like [0.9, 0.999], got {}", json_excerpt(b)));
    s.beta1 = get_num(c, b[0], w + ".betas[0]", 0, 1);
    s.beta2 = get_num(c, b[1], w + ".betas[1]", 0, 1);
    if (s.beta1 >= 1) c.fail(w + ".betas[0]", fmt::format("must be below 1, got {}", json_excerpt(b[0])));
    if (s.beta2 >= 1) c.fail(w + ".betas[1]", fmt::format("must be below 1, got {}", json_excerpt(b[1])));
  }
  if (s.nesterov && (s.momentum <= 0 || s.dampening != 0))
    c.fail(w + ".nesterov", "needs \"momentum\" > 0 and \"dampening\": 0 (as torch.optim.SGD)");
  return s;
}

json optimizer_to_json(const OptimizerSpec& s) {
  if (s == OptimizerSpec::defaults(s.kind)) return s.name();  // the short form, as presets write it
  json j{{"type", s.name()}};
  switch (s.kind) {
    case OptimizerKind::Sgd:
      j["momentum"] = s.momentum;
      j["dampening"] = s.dampening;
      j["nesterov"] = s.nesterov;
      break;
    case OptimizerKind::Rmsprop:
      j["alpha"] = s.alpha;
      j["eps"] = s.eps;
      j["momentum"] = s.momentum;
      j["centered"] = s.centered;
      break;
    case OptimizerKind::Adam:
    case OptimizerKind::AdamW:
      j["betas"] = {s.beta1, s.beta2};
      j["eps"] = s.eps;
      j["amsgrad"] = s.amsgrad;
      break;
  }
  j["weight_decay"] = s.weight_decay;
  return j;
}

LrSchedule parse_lr(const Ctx& c, const json& lr) {
  LrSchedule s;
  if (lr.is_number()) {
    s.values = {get_num(c, lr, "train.lr", 0, 1e6)};
    return s;
  }
  if (!lr.is_object())
    c.fail("train.lr",
           fmt::format("must be a number or an object like {{\"values\": [0.1, 0.01], \"boundaries\": [100000]}}, got {}",
                       json_excerpt(lr)));
  std::string kind = "step";
  if (lr.contains("schedule")) {
    kind = get_str(c, lr["schedule"], "train.lr.schedule");
    if (kind != "step" && kind != "cosine")
      c.fail("train.lr.schedule", fmt::format("unknown schedule '{}'; use step or cosine", kind));
  }
  if (lr.contains("warmup")) s.warmup = get_int(c, lr["warmup"], "train.lr.warmup", 0, int64_t{1} << 40);
  if (kind == "cosine") {
    s.kind = LrSchedule::Kind::Cosine;
    check_keys(c, lr, "train.lr", {"schedule", "max", "min", "warmup"});
    if (!lr.contains("max")) c.fail("train.lr.max", "missing; the learning rate after warmup, where the cosine starts");
    s.max = get_num(c, lr["max"], "train.lr.max", 0, 1e6);
    if (lr.contains("min")) s.min = get_num(c, lr["min"], "train.lr.min", 0, 1e6);
    if (s.min > s.max) c.fail("train.lr.min", fmt::format("must not exceed train.lr.max ({}), got {}", s.max, s.min));
    s.values.clear();
    return s;
  }
  check_keys(c, lr, "train.lr", {"schedule", "values", "boundaries", "warmup"});
  if (!lr.contains("values") || !lr["values"].is_array() || lr["values"].empty())
    c.fail("train.lr.values", "must be a non-empty list of learning rates");
  s.values.clear();
  for (std::size_t i = 0; i < lr["values"].size(); ++i)
    s.values.push_back(get_num(c, lr["values"][i], fmt::format("train.lr.values[{}]", i), 0, 1e6));
  if (lr.contains("boundaries")) {
    if (!lr["boundaries"].is_array()) c.fail("train.lr.boundaries", "must be a list of step numbers");
    for (std::size_t i = 0; i < lr["boundaries"].size(); ++i)
      s.boundaries.push_back(get_int(c, lr["boundaries"][i], fmt::format("train.lr.boundaries[{}]", i), 1, int64_t{1} << 40));
  }
  if (s.boundaries.size() + 1 != s.values.size())
    c.fail("train.lr",
           fmt::format("{} values need {} boundaries, got {}", s.values.size(), s.values.size() - 1, s.boundaries.size()));
  for (std::size_t i = 1; i < s.boundaries.size(); ++i)
    if (s.boundaries[i] <= s.boundaries[i - 1]) c.fail("train.lr.boundaries", "must be increasing");
  return s;
}

json lr_to_json(const LrSchedule& s) {
  if (s.kind == LrSchedule::Kind::Cosine)
    return json{{"schedule", "cosine"}, {"max", s.max}, {"min", s.min}, {"warmup", s.warmup}};
  json j{{"values", s.values}, {"boundaries", s.boundaries}};
  if (s.warmup > 0) {
    j["schedule"] = "step";
    j["warmup"] = s.warmup;
  }
  return j;
}

// The logits must have one column per token: the last Linear's out is the vocabulary, and only
// the kinds that may follow the output layer (the lecture's last BatchNorm1d) come after it.
void check_output_layer(const Ctx& c, const std::vector<LayerSpec>& layers) {
  std::size_t last = layers.size();
  for (std::size_t i = 0; i < layers.size(); ++i)
    if (layers[i].kind->is(LayerRole::Matmul)) last = i;
  if (last == layers.size() || !layers[last].out_is_vocab)
    c.fail("model.layers", "the last linear layer must have \"out\": \"vocab\" (one logit per token)");
  std::string may;
  for (const LayerKind* k : layer_kinds())
    if (k->traits.after_output) may += (may.empty() ? "" : " or ") + std::string(k->name);
  for (std::size_t i = last + 1; i < layers.size(); ++i)
    if (!layers[i].kind->traits.after_output)
      c.fail(fmt::format("model.layers[{}]", i), fmt::format("only {} may follow the output linear layer", may));
}

}  // namespace

void for_each_spec(const std::vector<LayerSpec>& specs, const std::function<void(const LayerSpec&)>& fn) {
  for (const auto& s : specs) {
    fn(s);
    for_each_spec(s.layers, fn);
  }
}

bool stack_takes_sequence(const std::vector<LayerSpec>& layers) {
  return !layers.empty() && layers.front().kind->traits.takes_sequence;
}

// ---- a layer's options, for its registry entry (layer_kinds.h) --------------------------------
int64_t LayerOptionReader::integer(const char* key, int64_t lo, int64_t hi) const {
  return get_int(Ctx{source_}, j_[key], field(key), lo, hi);
}
double LayerOptionReader::number(const char* key, double lo, double hi) const {
  return get_num(Ctx{source_}, j_[key], field(key), lo, hi);
}
bool LayerOptionReader::boolean(const char* key) const { return get_bool(Ctx{source_}, j_[key], field(key)); }
std::string LayerOptionReader::string(const char* key) const { return get_str(Ctx{source_}, j_[key], field(key)); }
InitSpec LayerOptionReader::init(const char* key, InitUse use) const {
  return parse_init_ctx(Ctx{source_}, j_[key], field(key), use);
}
void LayerOptionReader::fail(const std::string& at, const std::string& what) const { Ctx{source_}.fail(at, what); }

std::vector<LayerSpec> LayerOptionReader::layers(const char* key) const {
  std::vector<LayerSpec> out;
  for (std::size_t i = 0; i < j_[key].size(); ++i)
    out.push_back(parse_layer_spec(j_[key][i], fmt::format("{}.{}[{}]", where_, key, i), source_, nesting_ + 1));
  return out;
}

LayerSpec parse_layer_spec(const json& j, const std::string& where, const std::string& source, int nesting) {
  const Ctx c{source};
  if (!j.is_object()) c.fail(where, "must be an object like {\"type\": \"linear\", \"out\": 200}");
  if (!j.contains("type")) c.fail(where + ".type", fmt::format("missing; one of {}", layer_kind_names()));
  const std::string type = get_str(c, j["type"], where + ".type");
  LayerSpec s;
  s.kind = find_layer_kind(type);
  if (!s.kind) c.fail(where + ".type", fmt::format("unknown layer '{}'; use {}", type, layer_kind_names()));
  std::set<std::string> keys(s.kind->keys.begin(), s.kind->keys.end());
  keys.insert("type");
  check_keys(c, j, where, std::move(keys));
  if (s.kind->parse) s.kind->parse(LayerOptionReader(j, where, source, nesting), s);
  return s;
}

InitSpec parse_init(const json& j, const std::string& where) {
  const std::string src = "init";
  Ctx c{src};
  return parse_init_ctx(c, j, where, InitUse::LinearWeight);
}

json init_to_json(const InitSpec& s) {
  using K = InitSpec::Kind;
  json j;
  switch (s.kind) {
    case K::Zeros:
      j["kind"] = "zeros";
      break;
    case K::Ones:
      j["kind"] = "ones";
      break;
    case K::Constant:
      j["kind"] = "constant";
      j["value"] = s.value;
      break;
    case K::Normal:
      j["kind"] = "normal";
      break;
    case K::Kaiming:
      j["kind"] = "kaiming";
      j["gain"] = s.gain;
      break;
    case K::TorchLinear:
    case K::TorchLinearBias:
      j["kind"] = "torch-default";
      break;
    case K::XavierNormal:
      j["kind"] = "xavier-normal";
      j["gain"] = s.gain;
      break;
    case K::XavierUniform:
      j["kind"] = "xavier-uniform";
      j["gain"] = s.gain;
      break;
    case K::Lsuv:
      j["kind"] = "lsuv";
      j["batch"] = s.lsuv_batch;
      j["tol"] = s.lsuv_tol;
      j["max_iter"] = s.lsuv_max_iter;
      break;
  }
  if (s.scale != 1.0) j["scale"] = s.scale;
  return j;
}

Config parse_config(const json& j, const std::string& source) {
  Ctx c{source};
  Config cfg;
  check_keys(c, j, "", {"name", "description", "data", "model", "train"});
  if (j.contains("name")) cfg.name = get_str(c, j["name"], "name");
  if (j.contains("description")) cfg.description = get_str(c, j["description"], "description");
  if (j.contains("data")) {
    const json& d = j["data"];
    check_keys(c, d, "data", {"block_size", "split_seed"});
    if (d.contains("block_size")) cfg.block_size = static_cast<int>(get_int(c, d["block_size"], "data.block_size", 1, 1024));
    if (d.contains("split_seed")) cfg.split_seed = get_seed(c, d["split_seed"], "data.split_seed");
  }
  if (!j.contains("model")) c.fail("model", "missing; it holds n_embd and the layers");
  const json& m = j["model"];
  check_keys(c, m, "model", {"n_embd", "embedding_init", "layers"});
  if (m.contains("n_embd")) cfg.n_embd = static_cast<int>(get_int(c, m["n_embd"], "model.n_embd", 1, 1 << 16));
  if (m.contains("embedding_init"))
    cfg.embedding_init = parse_init_ctx(c, m["embedding_init"], "model.embedding_init", InitUse::Matrix);
  if (!m.contains("layers") || !m["layers"].is_array() || m["layers"].empty())
    c.fail("model.layers", "must be a non-empty list of layers ending in a Linear with \"out\": \"vocab\"");
  for (std::size_t i = 0; i < m["layers"].size(); ++i)
    cfg.layers.push_back(parse_layer_spec(m["layers"][i], fmt::format("model.layers[{}]", i), source));
  // The logits must have one column per token: the last Linear's out is the vocabulary.
  check_output_layer(c, cfg.layers);
  {
    const bool seq = stack_takes_sequence(cfg.layers);
    int time = seq ? cfg.block_size : 1, features = seq ? cfg.n_embd : cfg.block_size * cfg.n_embd;
    check_layer_shapes(cfg.layers, "model.layers", source, time, features);
    if (time != 1)
      c.fail("model.layers", fmt::format("the layers leave {} positions per example at the output; flatten them to one "
                                         "before the output linear (a {{\"type\": \"flatten\"}} without n merges all)",
                                         time));
  }
  if (j.contains("train")) {
    const json& t = j["train"];
    check_keys(c, t, "train", {"steps", "batch_size", "seed", "optimizer", "lr", "clip_grad_norm", "calibrate_batchnorm"});
    if (t.contains("steps")) cfg.steps = get_int(c, t["steps"], "train.steps", 0, int64_t{1} << 40);
    if (t.contains("batch_size")) cfg.batch_size = static_cast<int>(get_int(c, t["batch_size"], "train.batch_size", 1, 1 << 20));
    if (t.contains("seed")) cfg.seed = get_seed(c, t["seed"], "train.seed");
    if (t.contains("optimizer")) cfg.optimizer = parse_optimizer(c, t["optimizer"]);
    if (t.contains("calibrate_batchnorm"))
      cfg.calibrate_batchnorm = get_bool(c, t["calibrate_batchnorm"], "train.calibrate_batchnorm");
    if (t.contains("lr")) cfg.lr = parse_lr(c, t["lr"]);
    if (t.contains("clip_grad_norm")) cfg.clip_grad_norm = get_num(c, t["clip_grad_norm"], "train.clip_grad_norm", 0, 1e9);
  }
  const LayerKind* batch_stats = nullptr;
  for_each_spec(cfg.layers, [&](const LayerSpec& l) {
    if (l.kind->traits.running_stats) batch_stats = l.kind;
  });
  if (batch_stats && cfg.batch_size < 2)
    c.fail("train.batch_size", fmt::format("must be at least 2 with {} (it needs batch statistics)", batch_stats->class_name));
  return cfg;
}

json Config::to_json() const {
  json layers_j = json::array();
  for (const auto& l : layers) layers_j.push_back(layer_spec_json(l));
  return json{{"name", name},
              {"description", description},
              {"data", {{"block_size", block_size}, {"split_seed", split_seed}}},
              {"model", {{"n_embd", n_embd}, {"embedding_init", init_to_json(embedding_init)}, {"layers", layers_j}}},
              {"train",
               {{"steps", steps},
                {"batch_size", batch_size},
                {"seed", seed},
                {"optimizer", optimizer_to_json(optimizer)},
                {"lr", lr_to_json(lr)},
                {"clip_grad_norm", clip_grad_norm},
                {"calibrate_batchnorm", calibrate_batchnorm}}}};
}

Config load_config_file(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0)
    throw NotFound(fmt::format("{}: no such config file; pass an existing file with --config FILE", path));
  if (S_ISDIR(st.st_mode)) throw Error(fmt::format("{}: is a directory, not a config file", path));
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(fmt::format("{}: cannot read ({})", path, std::strerror(errno)));
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  if (text.find_first_not_of(" \t\r\n") == std::string::npos)
    throw Error(fmt::format("{}: the config file is empty; start from `makemore presets show lecture-batchnorm`", path));
  json j;
  try {
    j = parse_json_text(text, path);
  } catch (const Error& e) {  // a config has a known-good starting point
    throw Error(fmt::format("{}, or start from `makemore presets show NAME`", e.what()));
  }
  return parse_config(j, path);
}

Config apply_overrides(const Config& base, const TrainOverrides& o, const std::string& source) {
  Config cfg = base;
  if (o.steps >= 0) cfg.steps = o.steps;
  if (o.seed >= 0) cfg.seed = static_cast<uint64_t>(o.seed);
  if (o.split_seed >= 0) cfg.split_seed = static_cast<uint64_t>(o.split_seed);
  if (o.batch_size > 0) cfg.batch_size = o.batch_size;
  const LayerKind* batch_stats = nullptr;  // a kind normalizing over the batch (its registry trait)
  for_each_spec(cfg.layers, [&](const LayerSpec& l) {
    if (l.kind->traits.running_stats && !batch_stats) batch_stats = l.kind;
  });
  if (o.batch_size == 1 && batch_stats)  // named as typed, not as the config field it overrides
    throw Error(
        fmt::format("--batch-size 1: {} has {}, which normalizes over the batch and needs at least 2 "
                    "examples; use --batch-size 2 or more (the lecture uses 32)",
                    source, batch_stats->class_name));
  if (o.calibrate) cfg.calibrate_batchnorm = true;
  json j = cfg.to_json();
  if (!o.optimizer.empty()) j["train"]["optimizer"] = o.optimizer;
  if (o.lr >= 0) j["train"]["lr"] = o.lr;
  return parse_config(j, "command line");
}

}  // namespace mm
