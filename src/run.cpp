// Run folder I/O: checkpoints with the vocabulary and config in their metadata, and atomic
// writes of the small JSON files.
#include "makemore/run.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <sys/stat.h>

#include "makemore/checkpoint.h"
#include "makemore/error.h"
#include "makemore/version.h"

namespace mm {

using json = nlohmann::json;

void write_file_atomic(const std::string& path, const std::string& text) {
  const std::string tmp = fmt::format("{}.tmp.{}", path, static_cast<long>(getpid()));
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) throw Error(fmt::format("{}: cannot write ({}); check the folder exists and is writable", path, std::strerror(errno)));
  const bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  const bool closed = std::fclose(f) == 0;
  if (!ok || !closed || std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    std::remove(tmp.c_str());
    throw Error(fmt::format("{}: cannot write ({})", path, std::strerror(err)));
  }
}

json read_json_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(fmt::format("{}: cannot read ({})", path, std::strerror(errno)));
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_json_text(ss.str(), path);
}

void save_checkpoint(const std::string& path, const Model& model, const Config& cfg, const Vocab& vocab, int64_t step,
                     const std::string& words_fp) {
  TensorFile f;
  const auto& ps = model.params();
  for (std::size_t id = 0; id < ps.infos().size(); ++id) {
    const auto& p = ps.info(static_cast<int>(id));
    NamedTensor t;
    t.name = p.name;
    t.shape = p.is_1d ? std::vector<int64_t>{p.cols} : std::vector<int64_t>{p.rows, p.cols};
    const float* d = ps.data(static_cast<int>(id));
    t.data.assign(d, d + p.size());
    f.tensors.push_back(std::move(t));
  }
  f.metadata["format"] = "makemore.cpp/1";
  f.metadata["config"] = cfg.to_json().dump();
  f.metadata["vocab"] = to_utf8(vocab.chars());
  f.metadata["step"] = std::to_string(step);
  f.metadata["makemore_version"] = version_string();
  if (!words_fp.empty()) f.metadata["words_fnv1a64"] = words_fp;
  save_safetensors(path, f);
}

Dataset load_run_dataset(const std::string& dir, const LoadedRun& run) {
  const std::string path = dir + "/" + kWordsFile;
  struct stat st{};
  if (stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode))
    throw Error(fmt::format("{}: missing from the run folder (the word list it was trained on); retrain it with `makemore train -o {}`",
                            path, dir));
  Dataset data = Dataset::load(path);
  if (data.vocab().chars() != run.vocab.chars())
    throw Error(fmt::format("{}: does not match the checkpoint's vocabulary; the run folder was modified, retrain it", path));
  if (!run.words_fp.empty() && data.fingerprint() != run.words_fp)
    throw Error(fmt::format("{}: not the word list this run was trained on (its {} items differ from the ones the checkpoint "
                            "recorded), so its splits would be other examples; restore the file, or retrain with "
                            "`makemore train -i FILE -o {}`",
                            path, data.size(), dir));
  return data;
}

LoadedRun load_run(const std::string& dir) {
  struct stat st{};
  if (stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    throw Error(fmt::format("{}: no such run folder; train one first with `makemore train -o {}`", dir, dir));
  const std::string path = dir + "/" + kCheckpointFile;
  if (stat(path.c_str(), &st) != 0)
    throw Error(fmt::format("{}: no checkpoint in this run folder (the run did not get far enough to save one, or the file was removed); train again with `makemore train -o {}`", path, dir));
  TensorFile f = load_safetensors(path);
  auto meta = [&](const char* key) -> const std::string& {
    auto it = f.metadata.find(key);
    if (it == f.metadata.end())
      throw Error(fmt::format("{}: not a makemore.cpp checkpoint (no '{}' in its metadata)", path, key));
    return it->second;
  };
  LoadedRun run;
  if (auto it = f.metadata.find("words_fnv1a64"); it != f.metadata.end()) run.words_fp = it->second;
  run.config = parse_config(parse_json_text(meta("config"), path + " (config metadata)"), path + " (config metadata)");
  std::u32string chars;
  if (!from_utf8(meta("vocab"), &chars)) throw Error(fmt::format("{}: corrupt checkpoint (vocabulary is not UTF-8); retrain", path));
  run.vocab = Vocab::from_chars(chars);
  try {
    run.step = std::stoll(meta("step"));
  } catch (const std::exception&) {
    throw Error(fmt::format("{}: corrupt checkpoint (bad step '{}')", path, meta("step")));
  }
  run.model = std::make_unique<Model>(run.config, run.vocab.size());
  auto& ps = run.model->params();
  for (std::size_t id = 0; id < ps.infos().size(); ++id) {
    const auto& p = ps.info(static_cast<int>(id));
    const NamedTensor* t = f.find(p.name);
    if (!t) throw Error(fmt::format("{}: checkpoint lacks tensor '{}' that its config needs; retrain", path, p.name));
    if (t->data.size() != p.size())
      throw Error(fmt::format("{}: tensor '{}' has {} values, its config needs {}; retrain", path, p.name, t->data.size(), p.size()));
    if (!std::all_of(t->data.begin(), t->data.end(), [](float v) { return std::isfinite(v); }))
      throw Error(fmt::format("{}: tensor '{}' holds values that are not finite (the training had diverged when this was "
                              "saved); train again with a lower learning rate",
                              path, p.name));
    std::copy(t->data.begin(), t->data.end(), ps.data(static_cast<int>(id)));
  }
  return run;
}

}  // namespace mm
