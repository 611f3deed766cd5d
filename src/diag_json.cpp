// Diagnostics as JSON (diag_io.h): what diagnostics.jsonl, update_ratio.jsonl and inspect.json
// hold, as the report and the plots read them.
#include <fmt/format.h>

#include <cmath>
#include <fstream>

#include "makemore/diag_io.h"
#include "makemore/error.h"
#include "makemore/json_text.h"

namespace mm {

namespace {
using nlohmann::json;

json num(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

json hist_json(const Histogram& h) { return {{"lo", num(h.lo)}, {"hi", num(h.hi)}, {"counts", h.counts}}; }

json layer_json(const LayerDiag& d) {
  json j{{"index", d.index},
         {"name", d.name},
         {"type", d.type},
         {"describe", d.describe},
         {"units", d.units},
         {"out_mean", num(d.out.mean)},
         {"out_std", num(d.out.std)},
         {"out_min", num(d.out.min)},
         {"out_max", num(d.out.max)},
         {"saturated_pct", d.saturated_pct},
         {"sat99_pct", d.sat99_pct},
         {"dead_units", d.dead_units},
         {"dead_units_sample", d.dead_units_sample >= 0 ? json(d.dead_units_sample) : json(nullptr)},
         {"sat99_pct_sample", d.sat99_pct_sample >= 0 ? json(d.sat99_pct_sample) : json(nullptr)},
         {"hist", hist_json(d.hist)},
         {"grad_mean", d.has_grad ? num(d.grad.mean) : json(nullptr)},
         {"grad_std", d.has_grad ? num(d.grad.std) : json(nullptr)},
         {"grad_hist", d.has_grad ? hist_json(d.grad_hist) : json(nullptr)}};
  if (d.has_pre) j["pre"] = {{"mean", num(d.pre.mean)}, {"std", num(d.pre.std)}, {"hist", hist_json(d.pre_hist)}};
  return j;
}

json param_json(const ParamDiag& p) {
  json j{{"name", p.name},
         {"shape", p.is_1d ? json::array({p.cols}) : json::array({p.rows, p.cols})},
         {"data_mean", num(p.data.mean)},
         {"data_std", num(p.data.std)},
         {"grad_mean", num(p.grad.mean)},
         {"grad_std", num(p.grad.std)},
         {"grad_data_ratio", num(p.grad_data_ratio)},
         {"hist", hist_json(p.hist)}};
  if (p.update_data_log10) j["update_data_log10"] = num(*p.update_data_log10);
  return j;
}
}  // namespace

nlohmann::json snapshot_json(const Snapshot& s, bool with_saturation_map) {
  json layers = json::array(), params = json::array();
  for (const auto& d : s.layers) layers.push_back(layer_json(d));
  for (const auto& p : s.params) params.push_back(param_json(p));
  json j{{"step", s.step}, {"loss", num(s.loss)}, {"lr", s.lr}, {"batch", s.batch}, {"layers", layers}, {"params", params}};
  if (!s.inner.empty()) {  // inside the blocks; "index" is the block's
    json inner = json::array();
    for (const auto& d : s.inner) inner.push_back(layer_json(d));
    j["inner_layers"] = std::move(inner);
  }
  if (with_saturation_map) {
    const auto& m = s.saturation_map;
    j["saturation_map"] = m.layer >= 0
                              ? json{{"layer", m.layer}, {"type", m.type}, {"rows", m.rows}, {"cols", m.cols}, {"bits", m.bits}}
                              : json(nullptr);
  }
  return j;
}

nlohmann::json ratios_json(const UpdateRatios& u, const ParamStore& params) {
  json r = json::object();
  std::size_t k = 0;
  for (const ParamInfo& p : params.infos()) {
    if (!p.trainable) continue;
    // Four decimals of a log10 are plenty for a plot and keep the per-step file small.
    r[p.name] = k < u.log10.size() ? num(std::round(u.log10[k] * 1e4) / 1e4) : json(nullptr);
    ++k;
  }
  return {{"step", u.step}, {"ratios", r}};
}

std::vector<UpdateRatios> read_update_ratios(const std::string& path, const ParamStore& params, int64_t before) {
  std::vector<UpdateRatios> out;
  std::ifstream in(path, std::ios::binary);
  std::string line;
  for (int64_t n = 1; std::getline(in, line); ++n) {
    const json j = parse_json_line(line).value_or(json());
    if (!j.is_object() || !j.contains("step") || !j["step"].is_number_integer() || !j.contains("ratios") ||
        !j["ratios"].is_object())
      throw Error(
          fmt::format("{}:{}: not an update-ratio record; delete the file to continue without the earlier ratios", path, n));
    UpdateRatios u;
    u.step = j["step"].get<int64_t>();
    if (u.step >= before) break;
    for (const ParamInfo& p : params.infos()) {
      if (!p.trainable) continue;
      const auto it = j["ratios"].find(p.name);
      u.log10.push_back(it != j["ratios"].end() && it->is_number() ? it->get<double>() : NAN);
    }
    out.push_back(std::move(u));
  }
  return out;
}

nlohmann::json diagnosis_json(const Diagnosis& r) {
  json j = snapshot_json(r.snapshot, true);
  j["name"] = r.name;
  j["vocab_size"] = r.vocab_size;
  j["steps_trained"] = r.steps_trained;
  j["expected_loss"] = r.expected_loss;
  j["initial_loss"] = r.initial_loss ? num(*r.initial_loss) : json(nullptr);
  json buckets = json::array();
  for (double b : loss_buckets(r.losses, 1000)) buckets.push_back(num(b));
  j["loss_buckets"] = {{"size", 1000}, {"means", buckets}};
  json findings = json::array();
  for (const auto& f : r.findings)
    findings.push_back({{"id", f.id},
                        {"layer", f.layer >= 0 ? json(f.layer) : json(nullptr)},
                        {"message", f.message},
                        {"evidence", f.evidence},
                        {"fix", f.fix}});
  j["findings"] = findings;
  j["healthy"] = r.findings.empty();
  return j;
}

}  // namespace mm
