// inspect(): the doctor's diagnosis (doctor.h) with, per layer, the measured minibatch's
// activations, pre-activations, gradients, histograms and saturation mask as numpy arrays, so
// the lecture's figures are one matplotlib call each.
#include <fmt/format.h>

#include <map>

#include "common.h"
#include "inspection.h"
#include "makemore/diag.h"
#include "makemore/error.h"
#include "makemore/layer_kinds.h"

namespace mm::python {

namespace {

py::tuple hist_tuple(const Histogram& h) {
  const auto bins = static_cast<py::ssize_t>(h.counts.size());
  py::array_t<int64_t> counts(bins);
  py::array_t<double> edges(bins + 1);
  std::copy(h.counts.begin(), h.counts.end(), counts.mutable_data());
  for (py::ssize_t k = 0; k <= bins; ++k)
    edges.mutable_data()[k] = h.lo + (h.hi - h.lo) * static_cast<double>(k) / static_cast<double>(bins ? bins : 1);
  return py::make_tuple(counts, edges);
}

PyLayer layer_view(const LayerSite& site, const LayerDiag& d, const nlohmann::json& stats) {
  PyLayer l;
  l.name = d.name;
  l.index = d.index;
  l.type = d.type;
  l.describe = d.describe;
  l.stats = json_to_py(stats);
  const Mat& out = site.layer->out();
  l.out = copy_mat(out);
  l.hist = hist_tuple(d.hist);
  if (d.has_pre && site.input()) {
    l.pre = copy_mat(*site.input());
    l.pre_hist = hist_tuple(d.pre_hist);
  }
  if (d.has_grad && site.dout().size() == out.size()) {
    l.grad = copy_mat(site.dout());
    l.grad_hist = hist_tuple(d.grad_hist);
  }
  if (d.bounded()) {
    const std::vector<uint8_t> mask = saturation_mask(out, *d.kind);
    py::array_t<bool> a({out.rows(), out.cols()});
    std::copy(mask.begin(), mask.end(), a.mutable_data());
    l.saturated = a;
  }
  return l;
}

py::list layer_views(const Diagnosis& d, const Model& model, const nlohmann::json& snap) {
  std::map<std::string, const nlohmann::json*> stats;  // by layer name: "2", "2.1"
  for (const char* key : {"layers", "inner_layers"})
    if (snap.contains(key))
      for (const auto& j : snap[key]) stats[j["name"].get<std::string>()] = &j;
  std::map<std::string, const LayerDiag*> diags;
  for (const LayerDiag* l : layers_in_order(d.snapshot)) diags[l->name] = l;
  py::list out;
  for (const LayerSite& site : walk_layers(model)) {
    const auto it = diags.find(site.name);
    if (it == diags.end()) continue;
    const auto js = stats.find(site.name);
    out.append(layer_view(site, *it->second, js == stats.end() ? nlohmann::json::object() : *js->second));
  }
  return out;
}

void set_ratios(PyInspection& r, const Diagnosis& d, const Model& model) {
  std::vector<std::string> names;
  for (const ParamInfo& p : model.params().infos())
    if (p.trainable) names.push_back(p.name);
  const auto n = static_cast<py::ssize_t>(d.ratios.size()), P = static_cast<py::ssize_t>(names.size());
  py::array_t<double> ratios({n, P});
  py::array_t<int64_t> steps(n);
  for (py::ssize_t i = 0; i < n; ++i) {
    const UpdateRatios& u = d.ratios[static_cast<std::size_t>(i)];
    steps.mutable_data()[i] = u.step;
    for (py::ssize_t k = 0; k < P; ++k)
      ratios.mutable_data()[i * P + k] =
          static_cast<std::size_t>(k) < u.log10.size() ? u.log10[static_cast<std::size_t>(k)] : std::nan("");
  }
  r.ratios = ratios;
  r.ratio_steps = steps;
  r.param_names = py::cast(names);
}

}  // namespace

PyInspection make_inspection(const Diagnosis& d, const Model& model) {
  PyInspection r;
  const nlohmann::json j = diagnosis_json(d);
  r.data = json_to_py(j);
  r.findings = json_to_py(j["findings"]);
  r.params = json_to_py(j["params"]);
  r.name = d.name;
  r.expected_loss = d.expected_loss;
  r.initial_loss = d.initial_loss ? py::object(py::float_(*d.initial_loss)) : py::object(py::none());
  r.loss = d.snapshot.loss;
  r.step = d.snapshot.step;
  r.steps_trained = d.steps_trained;
  r.layers = layer_views(d, model, j);
  r.losses = copy_floats(d.losses.data(), {static_cast<py::ssize_t>(d.losses.size())});
  set_ratios(r, d, model);
  r.text = format_diagnosis(d);
  return r;
}

void bind_inspect(py::module_& m) {
  py::class_<PyLayer>(m, "LayerStats",
                      "One layer at the measured step: out (rows, units), pre (a bounded activation's input), grad "
                      "(dL/d out), saturated (a bounded activation: |out| > 0.99 on its scale), histograms as "
                      "(counts, edges), and stats (the doctor's numbers).")
      .def_readonly("name", &PyLayer::name)
      .def_readonly("index", &PyLayer::index)
      .def_readonly("type", &PyLayer::type)
      .def_readonly("describe", &PyLayer::describe)
      .def_readonly("stats", &PyLayer::stats)
      .def_readonly("out", &PyLayer::out)
      .def_readonly("pre", &PyLayer::pre)
      .def_readonly("grad", &PyLayer::grad)
      .def_readonly("saturated", &PyLayer::saturated)
      .def_readonly("hist", &PyLayer::hist)
      .def_readonly("pre_hist", &PyLayer::pre_hist)
      .def_readonly("grad_hist", &PyLayer::grad_hist)
      .def("__repr__", [](const PyLayer& l) { return fmt::format("LayerStats({}: {})", l.name, l.describe); });

  py::class_<PyInspection>(m, "Inspection",
                           "The doctor's diagnosis of one measured step: findings, losses, per-layer arrays (layers), "
                           "per-parameter statistics (params) and update:data ratios (ratios: (records, parameters) "
                           "log10, at ratio_steps, columns param_names).")
      .def_readonly("name", &PyInspection::name)
      .def_readonly("findings", &PyInspection::findings)
      .def_readonly("layers", &PyInspection::layers)
      .def_readonly("params", &PyInspection::params)
      .def_readonly("expected_loss", &PyInspection::expected_loss)
      .def_readonly("initial_loss", &PyInspection::initial_loss)
      .def_readonly("loss", &PyInspection::loss)
      .def_readonly("step", &PyInspection::step)
      .def_readonly("steps_trained", &PyInspection::steps_trained)
      .def_readonly("losses", &PyInspection::losses)
      .def_readonly("ratios", &PyInspection::ratios)
      .def_readonly("ratio_steps", &PyInspection::ratio_steps)
      .def_readonly("param_names", &PyInspection::param_names)
      .def_readonly("text", &PyInspection::text)
      .def(
          "to_dict", [](const PyInspection& r) { return r.data; }, "What `makemore inspect --json` prints.")
      .def("__str__", [](const PyInspection& r) { return r.text; })
      .def("__repr__", [](const PyInspection& r) {
        return fmt::format("Inspection({}, step {}, {} findings)", r.name, r.step, py::len(r.findings));
      });

  m.def(
      "inspect",
      [](const Config& cfg, const PyDataset& ds, int64_t steps) {
        if (steps < 0) throw py::value_error(fmt::format("steps: {} is negative; use 0 (at initialization) or more", steps));
        if (ds.block_size != cfg.block_size)
          throw py::value_error(
              fmt::format("the dataset's block_size {} is not the config's data.block_size {}; "
                          "make Dataset(..., block_size={})",
                          ds.block_size, cfg.block_size, cfg.block_size));
        if (ds.splits.train.size() < 2) throw Error(fmt::format("{}: too few items for a training split", ds.data.source()));
        std::unique_ptr<Model> model;
        Diagnosis d;
        {
          py::gil_scoped_release release;
          d = inspect_training(cfg, ds.splits, ds.data.vocab().size(), steps, &model);
        }
        return make_inspection(d, *model);
      },
      py::arg("config"), py::arg("dataset"), py::arg("steps") = 0,
      "The doctor on a fresh network (`makemore inspect`): initialize from the config's seed, train `steps` steps, "
      "measure the next one.");
}

}  // namespace mm::python
