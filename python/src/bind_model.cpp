// Model: a run's network. Parameters and buffers are numpy views of the library's own memory
// (ParamStore: a write through numpy is a write into the model); forward and loss run the
// library's forward pass.
#include <fmt/format.h>

#include "common.h"
#include "makemore/error.h"
#include "makemore/model.h"

namespace mm::python {

namespace {

// {name: view} of the trainable parameters (buffers = false) or the buffers, in checkpoint order.
py::dict param_views(PyModel& pm, bool buffers, bool grads) {
  py::dict d;
  ParamStore& ps = pm.model().params();
  for (std::size_t id = 0; id < ps.infos().size(); ++id) {
    const ParamInfo& p = ps.info(static_cast<int>(id));
    if (p.trainable == buffers) continue;
    std::vector<py::ssize_t> shape = p.is_1d ? std::vector<py::ssize_t>{p.cols} : std::vector<py::ssize_t>{p.rows, p.cols};
    float* ptr = grads ? ps.grad(static_cast<int>(id)) : ps.data(static_cast<int>(id));
    d[py::str(p.name)] = view_floats(ptr, shape, pm.owner);
  }
  return d;
}

Examples examples_of(PyModel& pm, py::handle X, py::handle Y) {
  Examples ex;
  ex.block_size = pm.model().block_size();
  py::ssize_t rows = 0, yrows = 0;
  ex.x = token_array(X, "X", 2, ex.block_size, pm.model().vocab_size(), &rows);
  ex.y = token_array(Y, "Y", 1, 0, pm.model().vocab_size(), &yrows);
  if (rows != yrows) throw py::value_error(fmt::format("X has {} rows but Y has {}; one target per context", rows, yrows));
  return ex;
}

void check_batch(PyModel& pm, std::size_t rows) {
  if (pm.r->mode == Mode::Train && rows < 2 && pm.model().has_running_stats())
    throw py::value_error("train mode: BatchNorm normalizes over the batch; pass at least 2 rows (or set mode = 'eval')");
}

const Mat& forward(PyModel& pm, const Examples& ex) {
  check_batch(pm, ex.size());
  return pm.model().forward(ex.x.data(), static_cast<int>(ex.size()), ForwardContext(pm.r->mode, &pm.r->gen));
}

}  // namespace

void bind_model(py::module_& m) {
  py::class_<PyModel>(m, "Model",
                      "A run's network. parameters / buffers: numpy views of the model's own memory (no copy: a "
                      "write changes the model). mode: 'eval' (running statistics) or 'train' (batch statistics; "
                      "a train-mode forward updates BatchNorm's running statistics, as PyTorch's does).")
      .def_property_readonly(
          "parameters", [](PyModel& pm) { return param_views(pm, false, false); },
          "{name: array}: the trainable parameters, named and shaped as in the checkpoint (Linear weight: (in, out)).")
      .def_property_readonly(
          "buffers", [](PyModel& pm) { return param_views(pm, true, false); }, "{name: array}: BatchNorm running statistics.")
      .def_property_readonly(
          "grads", [](PyModel& pm) { return param_views(pm, false, true); },
          "{name: array}: the gradients of the last backward (inspect()).")
      .def_property(
          "mode", [](const PyModel& pm) { return pm.r->mode == Mode::Train ? "train" : "eval"; },
          [](PyModel& pm, const std::string& mode) {
            if (mode != "train" && mode != "eval") throw py::value_error("mode: '" + mode + "' is not 'train' or 'eval'");
            pm.r->mode = mode == "train" ? Mode::Train : Mode::Eval;
          })
      .def(
          "forward",
          [](PyModel& pm, py::handle X) {
            Examples ex;
            py::ssize_t rows = 0;
            ex.block_size = pm.model().block_size();
            ex.x = token_array(X, "X", 2, ex.block_size, pm.model().vocab_size(), &rows);
            ex.y.resize(static_cast<std::size_t>(rows));
            return copy_mat(forward(pm, ex));
          },
          py::arg("X"), "Logits (rows, vocab) for contexts X (rows, block_size) of token indices (int64 or int32).")
      .def(
          "loss",
          [](PyModel& pm, py::handle X, py::handle Y) {
            const Examples ex = examples_of(pm, X, Y);
            if (pm.r->mode == Mode::Eval) return pm.model().evaluate(ex);  // `makemore eval`'s chunked mean
            forward(pm, ex);
            return static_cast<double>(pm.model().loss(ex.y.data()));
          },
          py::arg("X"), py::arg("Y"), "Mean cross-entropy of predicting Y from X.")
      .def_property_readonly("vocab_size", [](const PyModel& pm) { return pm.model().vocab_size(); })
      .def_property_readonly("block_size", [](const PyModel& pm) { return pm.model().block_size(); })
      .def_property_readonly("num_params", [](const PyModel& pm) { return pm.model().num_params(); })
      .def_property_readonly(
          "layers",
          [](const PyModel& pm) {
            std::vector<std::string> v;
            for (const Layer* l : pm.model().all_layers()) v.push_back(l->describe());
            return v;
          },
          "Each layer described as PyTorch prints it, depth first in forward order.")
      .def("__repr__", [](const PyModel& pm) {
        return fmt::format("Model({} parameters, {} layers, mode {})", pm.model().num_params(), pm.model().all_layers().size(),
                           pm.r->mode == Mode::Train ? "train" : "eval");
      });
}

}  // namespace mm::python
