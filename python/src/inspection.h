// What inspect() returns to Python (bind_inspect.cpp builds it; Run.inspect() too).
#pragma once
#include "common.h"
#include "makemore/doctor.h"

namespace mm::python {

struct PyLayer {
  std::string name, type, describe;
  int index = 0;
  py::object stats, out, pre = py::none(), grad = py::none(), saturated = py::none();
  py::object hist, pre_hist = py::none(), grad_hist = py::none();
};

struct PyInspection {
  std::string name, text;
  double expected_loss = 0, loss = 0;
  py::object initial_loss, data, findings, params, layers, losses, ratios, ratio_steps, param_names;
  int64_t step = 0, steps_trained = 0;
};

PyInspection make_inspection(const Diagnosis& d, const Model& model);

}  // namespace mm::python
