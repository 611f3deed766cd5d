// Config and presets: a network and its training as data (config.h), to and from Python dicts.
#include <cmath>

#include "common.h"
#include "makemore/config.h"
#include "makemore/error.h"
#include "makemore/presets.h"

namespace mm::python {

py::object json_to_py(const nlohmann::json& j) {
  switch (j.type()) {
    case nlohmann::json::value_t::null:
      return py::none();
    case nlohmann::json::value_t::boolean:
      return py::bool_(j.get<bool>());
    case nlohmann::json::value_t::number_integer:
      return py::int_(j.get<int64_t>());
    case nlohmann::json::value_t::number_unsigned:
      return py::int_(j.get<uint64_t>());
    case nlohmann::json::value_t::number_float:
      return py::float_(j.get<double>());
    case nlohmann::json::value_t::string:
      return py::str(j.get<std::string>());
    case nlohmann::json::value_t::array: {
      py::list l;
      for (const auto& v : j) l.append(json_to_py(v));
      return l;
    }
    case nlohmann::json::value_t::object: {
      py::dict d;
      for (const auto& [k, v] : j.items()) d[py::str(k)] = json_to_py(v);
      return d;
    }
    default:
      return py::none();
  }
}

nlohmann::json py_to_json(py::handle h, const std::string& where) {
  if (h.is_none()) return nullptr;
  if (py::isinstance<py::bool_>(h)) return h.cast<bool>();
  if (py::isinstance<py::int_>(h)) {
    const auto v = h.cast<py::int_>();
    if (v < py::int_(0)) return h.cast<int64_t>();  // out of range: pybind's cast raises
    return h.cast<uint64_t>();
  }
  if (py::isinstance<py::float_>(h)) {
    const double v = h.cast<double>();
    if (!std::isfinite(v)) throw py::value_error(where + ": " + std::to_string(v) + " is not a finite number");
    return v;
  }
  if (py::isinstance<py::str>(h)) return h.cast<std::string>();
  if (py::isinstance<py::dict>(h)) {
    nlohmann::json o = nlohmann::json::object();
    for (auto [k, v] : h.cast<py::dict>()) {
      if (!py::isinstance<py::str>(k)) throw py::type_error(where + ": keys must be str");
      const auto key = k.cast<std::string>();
      o[key] = py_to_json(v, where + "." + key);
    }
    return o;
  }
  if (py::isinstance<py::list>(h) || py::isinstance<py::tuple>(h)) {
    nlohmann::json a = nlohmann::json::array();
    std::size_t i = 0;
    for (auto v : h) a.push_back(py_to_json(v, where + "[" + std::to_string(i++) + "]"));
    return a;
  }
  throw py::type_error(where + ": " + std::string(py::str(h.get_type().attr("__name__"))) +
                       " is not a JSON value (dict, list, str, int, float, bool, None)");
}

void bind_config(py::module_& m) {
  m.def(
      "presets",
      [] {
        py::dict d;
        for (const auto& p : embedded_presets()) d[py::str(p.name)] = load_preset(p.name).description;
        return d;
      },
      "The built-in networks: {name: description} (the CLI's `makemore presets`).");

  py::class_<Config>(m, "Config", "A network and its training as data: the config file's contents, validated.")
      .def_static("from_preset", &load_preset, py::arg("name"), "A built-in network (see makemore.presets()).")
      .def_static(
          "from_json",
          [](const std::string& text, const std::string& source) { return parse_config(parse_json_text(text, source), source); },
          py::arg("text"), py::arg("source") = "json",
          "A config file's text (JSON, // comments allowed); `source` names it in errors.")
      .def_static("from_file", &load_config_file, py::arg("path"), "A config file.")
      .def_static(
          "from_dict", [](py::dict d, const std::string& source) { return parse_config(py_to_json(d, source), source); },
          py::arg("d"), py::arg("source") = "dict", "A config as to_dict() gives it (edited); every field is validated.")
      .def(
          "to_dict", [](const Config& c) { return json_to_py(c.to_json()); }, "The config as the file's JSON object.")
      .def(
          "to_json", [](const Config& c, int indent) { return c.to_json().dump(indent); }, py::arg("indent") = 2)
      .def_readonly("name", &Config::name)
      .def_readonly("description", &Config::description)
      .def_readonly("block_size", &Config::block_size)
      .def_readonly("split_seed", &Config::split_seed)
      .def_readonly("n_embd", &Config::n_embd)
      .def_readonly("steps", &Config::steps)
      .def_readonly("batch_size", &Config::batch_size)
      .def_readonly("seed", &Config::seed)
      .def("__repr__", [](const Config& c) {
        return "Config(" + c.name + ", steps=" + std::to_string(c.steps) + ", batch_size=" + std::to_string(c.batch_size) +
               ", block_size=" + std::to_string(c.block_size) + ")";
      });
}

}  // namespace mm::python
