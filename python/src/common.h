// What the binding files share: the wrapped objects (a Dataset with its splits, a Run, a model
// view), JSON <-> Python conversion, and the checks every array from Python passes. The
// binding only converts; every computation is libmakemore's.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "makemore/data.h"
#include "makemore/run.h"

namespace mm::python {

namespace py = pybind11;

void bind_config(py::module_& m);
void bind_data(py::module_& m);
void bind_run(py::module_& m);
void bind_model(py::module_& m);
void bind_inspect(py::module_& m);

py::object json_to_py(const nlohmann::json& j);
nlohmann::json py_to_json(py::handle h, const std::string& where);

// A word list with the lecture's splits of one block size and split seed; X and Y as numpy
// arrays (int64, PyTorch's index type), made once.
struct PyDataset {
  PyDataset(Dataset d, int block_size, uint64_t split_seed);
  Dataset data;
  int block_size;
  uint64_t split_seed;
  Splits splits;
  py::object train, val, test;  // Split(X, Y) named tuples
};

// A saved run, opened read-only, and the mode its model's forward runs in (train mode: the
// generator a stochastic layer draws from, seeded with the run's seed).
struct PyRun {
  explicit PyRun(Run r) : run(std::move(r)), gen(run.config().seed) {}
  Run run;
  Mode mode = Mode::Eval;
  TorchGenerator gen;
};

// The model of a run, viewed: owner (the PyRun's Python object) keeps it alive.
struct PyModel {
  py::object owner;
  PyRun* r;
  Model& model() const { return r->run.model(); }
};

// A float array owning a copy.
py::array_t<float> copy_floats(const float* p, const std::vector<py::ssize_t>& shape);
py::array_t<float> copy_mat(const Mat& m);
// A float array viewing memory that `base` keeps alive (no copy).
py::array_t<float> view_floats(float* p, const std::vector<py::ssize_t>& shape, py::handle base);

// Token indices from Python: an int32 or int64 numpy array, C-contiguous, with `ndim`
// dimensions (and `cols` columns when ndim is 2), every value in [0, vocab). Returns them as
// int32; *rows: the first dimension. Anything else is a ValueError naming `what`.
std::vector<int32_t> token_array(py::handle obj, const char* what, int ndim, int cols, int vocab, py::ssize_t* rows);

// A sample / word list from Python: every item a str.
std::vector<std::u32string> words_from(py::handle list, const std::string& what);

}  // namespace mm::python
