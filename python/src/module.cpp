// The extension module makemore._core: the library's errors as Python exceptions, then each
// concept's bindings (bind_*.cpp).
#include <new>
#include <stdexcept>

#include "common.h"
#include "makemore/error.h"

namespace mm::python {

py::array_t<float> copy_floats(const float* p, const std::vector<py::ssize_t>& shape) {
  py::array_t<float> a(shape);
  std::size_t n = 1;
  for (auto s : shape) n *= static_cast<std::size_t>(s);
  if (n) std::copy(p, p + n, a.mutable_data());
  return a;
}

py::array_t<float> copy_mat(const Mat& m) { return copy_floats(m.data(), {m.rows(), m.cols()}); }

py::array_t<float> view_floats(float* p, const std::vector<py::ssize_t>& shape, py::handle base) {
  std::vector<py::ssize_t> strides(shape.size());
  py::ssize_t stride = sizeof(float);
  for (std::size_t i = shape.size(); i-- > 0;) {
    strides[i] = stride;
    stride *= shape[i];
  }
  return py::array_t<float>(shape, strides, p, base);
}

namespace {

template <class T>
std::vector<int32_t> checked_tokens(const py::array& a, const char* what, int vocab) {
  const T* p = static_cast<const T*>(a.data());
  const auto n = static_cast<std::size_t>(a.size());
  std::vector<int32_t> out(n);
  for (std::size_t i = 0; i < n; ++i) {
    if (p[i] < 0 || p[i] >= vocab)
      throw py::value_error(std::string(what) + ": value " + std::to_string(p[i]) + " at flat index " + std::to_string(i) +
                            " is not a token of this vocabulary (0.." + std::to_string(vocab - 1) + ")");
    out[i] = static_cast<int32_t>(p[i]);
  }
  return out;
}

}  // namespace

std::vector<int32_t> token_array(py::handle obj, const char* what, int ndim, int cols, int vocab, py::ssize_t* rows) {
  const std::string w = what;
  if (!py::isinstance<py::array>(obj)) throw py::type_error(w + ": expected a numpy array of token indices");
  const auto a = py::reinterpret_borrow<py::array>(obj);
  const bool i32 = a.dtype().is(py::dtype::of<int32_t>()), i64 = a.dtype().is(py::dtype::of<int64_t>());
  if (!i32 && !i64)
    throw py::value_error(w + ": dtype " + std::string(py::str(a.dtype())) + " is not a token index; use int64 or int32");
  if (a.ndim() != ndim)
    throw py::value_error(w + ": expected " + std::to_string(ndim) + " dimension(s), got " + std::to_string(a.ndim()));
  if (ndim == 2 && a.shape(1) != cols)
    throw py::value_error(w + ": expected " + std::to_string(cols) + " columns (the block size), got " +
                          std::to_string(a.shape(1)));
  if (!(a.flags() & py::array::c_style))
    throw py::value_error(w + ": the array is not C-contiguous; pass numpy.ascontiguousarray(" + w + ")");
  if (a.shape(0) < 1) throw py::value_error(w + ": no rows");
  *rows = a.shape(0);
  return i32 ? checked_tokens<int32_t>(a, what, vocab) : checked_tokens<int64_t>(a, what, vocab);
}

std::vector<std::u32string> words_from(py::handle list, const std::string& what) {
  if (py::isinstance<py::str>(list)) throw py::type_error(what + ": expected a list of str, got one str");
  std::vector<std::u32string> out;
  std::size_t i = 0;
  for (py::handle item : py::iter(list)) {
    if (!py::isinstance<py::str>(item))
      throw py::type_error(what + "[" + std::to_string(i) + "]: expected str, got " +
                           std::string(py::str(item.get_type().attr("__name__"))));
    std::u32string w;
    from_utf8(item.cast<std::string>(), &w);  // a Python str is always valid UTF-8 here
    out.push_back(std::move(w));
    ++i;
  }
  return out;
}

}  // namespace mm::python

PYBIND11_MODULE(_core, m) {
  namespace py = pybind11;
  m.doc() = "makemore.cpp's library (libmakemore) from Python: import makemore, not this module.";
  // The library's one-line messages cross unchanged: a missing file or folder is
  // FileNotFoundError, any other bad input (file, config, value) ValueError.
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const mm::NotFound& e) {
      PyErr_SetString(PyExc_FileNotFoundError, e.what());
    } catch (const mm::Error& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    }
  });
  mm::python::bind_config(m);
  mm::python::bind_data(m);
  mm::python::bind_model(m);
  mm::python::bind_inspect(m);
  mm::python::bind_run(m);
}
