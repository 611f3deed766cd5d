// Helpers shared by the tests: a scratch folder removed when the test ends, reading a whole
// file, and the lecture's data (names.txt, its vocabulary and 80/10/10 split) loaded once.
#pragma once
#include <stdlib.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "makemore/data.h"

#ifndef MM_SOURCE_DIR
#define MM_SOURCE_DIR "."
#endif

namespace mm_test {

inline std::string read_file(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// The file of a study store (DIR/runs/) holding the training the study named `name`; empty
// when there is none. Files are named by their key's hash: the name is read from inside.
inline std::filesystem::path store_file(const std::filesystem::path& store, const std::string& name) {
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(store, ec)) {
    if (e.path().extension() != ".json") continue;
    const std::string text = read_file(e.path());
    if (text.find("\"name\":\"" + name + "\"") != std::string::npos) return e.path();
  }
  return {};
}

// How many finished trainings a store holds (its .json files).
inline std::size_t store_size(const std::filesystem::path& store) {
  std::size_t n = 0;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(store, ec)) n += e.path().extension() == ".json" ? 1 : 0;
  return n;
}

// A fresh folder under /tmp (named after `tag`), removed with everything in it at the end.
class TempDir {
 public:
  explicit TempDir(const std::string& tag = "mm") {
    std::string tmpl = "/tmp/" + tag + "_XXXXXX";
    const char* p = mkdtemp(tmpl.data());
    if (p == nullptr) std::abort();
    path_ = p;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

struct Lecture {
  mm::Vocab vocab;
  mm::Splits splits;
};

// data/names.txt split as the lecture splits it (block 3, seed 42); null when the file is absent.
inline const Lecture* lecture_data() {
  static std::unique_ptr<Lecture> data = [] {
    const std::string path = std::string(MM_SOURCE_DIR) + "/data/names.txt";
    if (!std::filesystem::exists(path)) return std::unique_ptr<Lecture>();
    auto d = std::make_unique<Lecture>();
    const mm::Dataset words = mm::Dataset::load(path);
    d->vocab = words.vocab();
    d->splits = words.split(3, 42);
    return d;
  }();
  return data.get();
}

}  // namespace mm_test

// Declares L (the lecture's data) or skips the test when setup has not copied names.txt.
#define NEED_DATA()                                    \
  const mm_test::Lecture* L = mm_test::lecture_data(); \
  if (!L) GTEST_SKIP() << "data/names.txt not found (setup copies it)"
