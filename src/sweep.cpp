// The sweep study (sweep.h): axes over config fields -> a plan of validated cells and jobs.
// The outputs (study.json, results.csv, table, page) are sweep_outputs.cpp's.
#include "makemore/sweep.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <map>

#include "makemore/error.h"
#include "makemore/json_text.h"
#include "makemore/model.h"
#include "makemore/presets.h"

namespace mm::sweep {

using json = nlohmann::json;

namespace {

// Commas outside [] and {} separate the items ("[0.1,0.01],0.05" is two).
std::vector<std::string> split_items(const std::string& s) {
  std::vector<std::string> items(1);
  int depth = 0;
  for (char c : s) {
    if (c == '[' || c == '{') ++depth;
    if (c == ']' || c == '}') --depth;
    if (c == ',' && depth == 0) {
      items.emplace_back();
      continue;
    }
    items.back() += c;
  }
  for (auto& it : items) {
    const auto b = it.find_first_not_of(" \t"), e = it.find_last_not_of(" \t");
    it = b == std::string::npos ? std::string() : it.substr(b, e - b + 1);
  }
  return items;
}

json item_value(const std::string& item) {
  json v = json::parse(item, nullptr, /*allow_exceptions=*/false);
  return v.is_discarded() ? json(item) : v;
}

// "layers[0]" -> ("layers", {0}); an index that is no whole number is the caller's error.
struct Step {
  std::string key;
  std::vector<long> indices;
};
std::vector<Step> parse_path(const std::string& path) {
  std::vector<Step> steps;
  std::size_t pos = 0;
  while (pos <= path.size()) {
    const std::size_t dot = std::min(path.find('.', pos), path.size());
    const std::string part = path.substr(pos, dot - pos);
    Step st;
    st.key = part.substr(0, part.find('['));
    if (st.key.empty()) throw Error(fmt::format("{}: an empty name in the field path", path));
    for (std::size_t b = part.find('['); b != std::string::npos; b = part.find('[', b + 1)) {
      const std::size_t e = part.find(']', b);
      long i = -1;
      const auto r = e == std::string::npos ? std::from_chars_result{nullptr, std::errc::invalid_argument}
                                            : std::from_chars(part.data() + b + 1, part.data() + e, i);
      if (r.ec != std::errc() || r.ptr != part.data() + e || i < 0)
        throw Error(fmt::format("{}: '{}' needs a list index like [0]", path, part));
      st.indices.push_back(i);
    }
    steps.push_back(std::move(st));
    pos = dot + 1;
  }
  return steps;
}

// A name where an object is needed stands for {"type": name} ("optimizer": "sgd").
json& as_object(json& node, const std::string& where) {
  if (node.is_string()) node = json{{"type", node}};
  if (node.is_null()) node = json::object();
  if (!node.is_object()) throw Error(fmt::format("{}: is {}, not an object with fields", where, json_excerpt(node)));
  return node;
}

}  // namespace

Axis parse_axis(const std::string& text) {
  const std::size_t eq = text.find('=');
  if (eq == std::string::npos || eq == 0)
    throw UsageError(fmt::format("--grid {}: needs FIELD=v1,v2,... (e.g. --grid train.lr=0.01,0.1)", text_excerpt(text, 120)));
  Axis a;
  a.field = text.substr(0, eq);
  if (a.field == "train.seed" || a.field == "seed")
    throw UsageError(fmt::format("--grid {}: seeds are an axis of their own; use --seeds N", text_excerpt(text, 120)));
  for (const std::string& item : split_items(text.substr(eq + 1))) {
    if (item.empty())
      throw UsageError(fmt::format("--grid {}: an empty value; give a comma list like {}=1,2", text_excerpt(text, 120), a.field));
    if (std::find(a.texts.begin(), a.texts.end(), item) != a.texts.end())
      throw UsageError(fmt::format("--grid {}: the value {} is given twice", text_excerpt(text, 120), item));
    a.texts.push_back(item);
    a.values.push_back(item_value(item));
  }
  return a;
}

void set_field(json& config, const std::string& path, const json& value) {
  const std::vector<Step> steps = parse_path(path);
  json* node = &config;
  std::string where;
  for (std::size_t s = 0; s < steps.size(); ++s) {
    const Step& st = steps[s];
    json& obj = as_object(*node, where.empty() ? "the config" : where);
    where += (where.empty() ? "" : ".") + st.key;
    const bool last = s + 1 == steps.size() && st.indices.empty();
    if (!obj.contains(st.key) && !last && !st.indices.empty())
      throw Error(fmt::format("{}: no such list in the base config", where));
    node = &obj[st.key];
    for (std::size_t k = 0; k < st.indices.size(); ++k) {
      if (!node->is_array() || static_cast<std::size_t>(st.indices[k]) >= node->size())
        throw Error(fmt::format("{}[{}]: no such item; the base config's {} has {}", where, st.indices[k], where,
                                node->is_array() ? fmt::format("{} items", node->size()) : "no list"));
      node = &(*node)[static_cast<std::size_t>(st.indices[k])];
      where += fmt::format("[{}]", st.indices[k]);
    }
  }
  *node = value;
}

// ---- the plan -----------------------------------------------------------------------------

namespace {

std::string assignment(const Axis& a, std::size_t v) { return a.field + "=" + a.texts[v]; }

// The cell's JSON: the base (or the preset axis's value), then each other axis's value.
json cell_json(const Spec& spec, const std::vector<std::size_t>& at, const std::string& source) {
  json j = spec.base;
  for (std::size_t a = 0; a < spec.axes.size(); ++a)
    if (spec.axes[a].field == kPresetAxis) {
      const json& v = spec.axes[a].values[at[a]];
      if (!v.is_string()) throw Error(fmt::format("{}: a preset name, like lecture-kaiming", source));
      j = load_preset(v.get<std::string>()).to_json();
    }
  if (spec.steps >= 0) j["train"]["steps"] = spec.steps;
  for (std::size_t a = 0; a < spec.axes.size(); ++a)
    if (spec.axes[a].field != kPresetAxis) set_field(j, spec.axes[a].field, spec.axes[a].values[at[a]]);
  return j;
}

// Parsed as a config file is; any error becomes a UsageError naming `source`.
Config checked_config(const Spec& spec, const std::vector<std::size_t>& at, const std::string& source) {
  try {
    Config cfg = parse_config(cell_json(spec, at, source), source);
    cfg.name = spec.base_name;
    return cfg;
  } catch (const UsageError&) {
    throw;
  } catch (const Error& e) {
    const std::string m = e.what();
    throw UsageError(m.starts_with(source) ? m : source + ": " + m);
  }
}

}  // namespace

std::string Plan::cell_label(std::size_t c) const {
  std::string s;
  for (std::size_t a = 0; a < spec.axes.size(); ++a) {
    if (a) s += ' ';
    s += assignment(spec.axes[a], cells[c].at[a]);
  }
  return s.empty() ? "base" : s;
}

double Plan::job_cost(std::size_t j) const { return study::job_cost(jobs[j]); }

Plan make_plan(const Spec& spec) {
  if (spec.seeds < 1) throw UsageError(fmt::format("--seeds: {} must be at least 1", spec.seeds));
  Plan p;
  p.spec = spec;
  std::vector<std::size_t> at(spec.axes.size(), 0);
  // Each value alone, on the other axes' first values: the error names that one value.
  for (std::size_t a = 0; a < spec.axes.size(); ++a)
    for (std::size_t v = 0; v < spec.axes[a].values.size(); ++v) {
      std::vector<std::size_t> one(spec.axes.size(), 0);
      one[a] = v;
      (void)checked_config(spec, one, "--grid " + assignment(spec.axes[a], v));
    }
  for (;;) {
    std::string source = "--grid";
    for (std::size_t a = 0; a < spec.axes.size(); ++a) source += (a ? ", " : " ") + assignment(spec.axes[a], at[a]);
    p.cells.push_back({at, checked_config(spec, at, spec.axes.empty() ? spec.base_name : source)});
    std::size_t a = spec.axes.size();  // the next combination, the last axis fastest
    while (a > 0 && ++at[a - 1] == spec.axes[a - 1].values.size()) at[--a] = 0;
    if (a == 0) break;
  }
  for (std::size_t c = 0; c < p.cells.size(); ++c)
    for (int s = 0; s < spec.seeds; ++s) {
      const Config& cfg = p.cells[c].config;
      p.jobs.push_back(study::make_job(fmt::format("{} seed {}", p.cell_label(c), s), cfg, cfg.seed + static_cast<uint64_t>(s)));
    }
  return p;
}

Shard parse_shard(const std::string& text) {
  Shard s;
  const std::size_t slash = text.find('/');
  const auto whole = [&](std::size_t b, std::size_t e, int& out) {
    const auto r = std::from_chars(text.data() + b, text.data() + e, out);
    return b < e && r.ec == std::errc() && r.ptr == text.data() + e;
  };
  if (slash == std::string::npos || !whole(0, slash, s.k) || !whole(slash + 1, text.size(), s.n) || s.n < 1 || s.k < 1 ||
      s.k > s.n)
    throw UsageError(fmt::format("--shard {}: needs K/N with 1 <= K <= N, e.g. --shard 2/8", text_excerpt(text, 60)));
  return s;
}

std::vector<std::size_t> shard_jobs(std::size_t job_count, Shard shard) {
  std::vector<std::size_t> out;
  for (std::size_t j = 0; j < job_count; ++j)
    if (!shard.on() || static_cast<int>(j % static_cast<std::size_t>(shard.n)) == shard.k - 1) out.push_back(j);
  return out;
}

}  // namespace mm::sweep
