// Dataset: a word list (a file or Python strs), its vocabulary, and the lecture's 80/10/10
// splits as numpy arrays (data.h's Dataset does all of it).
#include <fmt/format.h>

#include "common.h"
#include "makemore/error.h"

namespace mm::python {

namespace {

py::object split_tuple(const py::object& split_type, const Examples& ex) {
  const auto n = static_cast<py::ssize_t>(ex.size()), T = static_cast<py::ssize_t>(ex.block_size);
  py::array_t<int64_t> X({n, T}), Y({n});
  std::copy(ex.x.begin(), ex.x.end(), X.mutable_data());
  std::copy(ex.y.begin(), ex.y.end(), Y.mutable_data());
  return split_type(X, Y);
}

// Words as the word-file reader would have left them: not empty, no surrounding whitespace, no
// line break or NUL (words.txt in a run folder holds one per line).
void check_words(const std::vector<std::u32string>& words) {
  if (words.empty()) throw py::value_error("words: the list is empty; pass at least 10 words (80/10/10 splits)");
  for (std::size_t i = 0; i < words.size(); ++i) {
    const auto& w = words[i];
    const std::string at = fmt::format("words[{}]", i);
    if (w.empty()) throw py::value_error(at + ": empty string; leave it out");
    for (char32_t c : w)
      if (c == U'\n' || c == U'\r' || c == U'\0') throw py::value_error(at + ": contains a line break or NUL; one word per item");
    auto space = [](char32_t c) { return c == U' ' || c == U'\t' || c == U'\v' || c == U'\f'; };
    if (space(w.front()) || space(w.back()))
      throw py::value_error(at + ": '" + to_utf8(w) +
                            "' has surrounding whitespace; strip it (a word file's lines are stripped)");
  }
}

}  // namespace

PyDataset::PyDataset(Dataset d, int bs, uint64_t seed) : data(std::move(d)), block_size(bs), split_seed(seed) {
  if (bs < 1 || bs > 1024) throw py::value_error(fmt::format("block_size: {} is out of range; use 1 to 1024", bs));
  splits = data.split(bs, seed);
  const py::object split_type = py::module_::import("makemore._core").attr("Split");
  train = split_tuple(split_type, splits.train);
  val = split_tuple(split_type, splits.val);
  test = split_tuple(split_type, splits.test);
}

void bind_data(py::module_& m) {
  m.attr("Split") = py::module_::import("collections").attr("namedtuple")("Split", "X Y");
  py::class_<PyDataset>(m, "Dataset",
                        "A word list, its vocabulary (index 0 is the boundary token '.') and the lecture's 80/10/10 "
                        "splits for one block size and split seed, each a Split(X, Y) of numpy int64 arrays (copies): "
                        "X (n, block_size) contexts, Y (n) next tokens.")
      .def(py::init([](py::object source, int block_size, uint64_t split_seed) {
             if (py::isinstance<py::str>(source) || py::hasattr(source, "__fspath__")) {
               const auto path = py::module_::import("os").attr("fspath")(source).cast<std::string>();
               return std::make_unique<PyDataset>(Dataset::load(path), block_size, split_seed);
             }
             auto words = words_from(source, "words");
             check_words(words);
             return std::make_unique<PyDataset>(Dataset::from_words(std::move(words), "words"), block_size, split_seed);
           }),
           py::arg("source"), py::arg("block_size") = 3, py::arg("split_seed") = 42,
           "source: a word file's path (UTF-8, one item per line) or a list of str.")
      .def_readonly("train", &PyDataset::train)
      .def_readonly("val", &PyDataset::val)
      .def_readonly("test", &PyDataset::test)
      .def_readonly("block_size", &PyDataset::block_size)
      .def_readonly("split_seed", &PyDataset::split_seed)
      .def_property_readonly("source", [](const PyDataset& d) { return d.data.source(); })
      .def_property_readonly("fingerprint", [](const PyDataset& d) { return d.data.fingerprint(); })
      .def_property_readonly(
          "vocab",
          [](const PyDataset& d) {
            std::vector<std::string> v;
            for (int i = 0; i < d.data.vocab().size(); ++i) v.push_back(d.data.vocab().token_utf8(i));
            return v;
          },
          "The tokens by index: vocab[0] is '.', the boundary.")
      .def_property_readonly("words",
                             [](const PyDataset& d) {
                               std::vector<std::string> v;
                               for (const auto& w : d.data.words()) v.push_back(to_utf8(w));
                               return v;
                             })
      .def("__len__", [](const PyDataset& d) { return d.data.size(); })
      .def("__repr__", [](const PyDataset& d) {
        return fmt::format("Dataset({}: {} words, vocabulary {}, block_size {}, examples {} / {} / {})", d.data.source(),
                           d.data.size(), d.data.vocab().size(), d.block_size, d.splits.train.size(), d.splits.val.size(),
                           d.splits.test.size());
      });
}

}  // namespace mm::python
