// The run folder: everything a training leaves behind, so eval / sample / inspect / report
// work from it alone. config.json (resolved), words.txt (the word list used), model.safetensors
// (parameters, BatchNorm buffers, vocabulary and config in its metadata), metrics.jsonl (loss
// per step), train_state.safetensors (generator and optimizer state: `train --resume` continues
// the run exactly), result.json (written last: its presence means the run completed or was
// interrupted and saved).
#pragma once
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "makemore/config.h"
#include "makemore/data.h"
#include "makemore/model.h"

namespace mm {

inline constexpr const char* kCheckpointFile = "model.safetensors";
inline constexpr const char* kConfigFile = "config.json";
inline constexpr const char* kWordsFile = "words.txt";
inline constexpr const char* kMetricsFile = "metrics.jsonl";
inline constexpr const char* kResultFile = "result.json";
inline constexpr const char* kTrainStateFile = "train_state.safetensors";  // what `train --resume` needs

// words_fp: words_fingerprint() of the word list trained on (metadata "words_fnv1a64"), so that
// a run folder whose words.txt was replaced is refused instead of evaluated on other splits.
void save_checkpoint(const std::string& path, const Model& model, const Config& cfg, const Vocab& vocab,
                     int64_t step, const std::string& words_fp = "");

struct LoadedRun {
  Config config;
  Vocab vocab;
  std::unique_ptr<Model> model;
  int64_t step = 0;
  std::string words_fp;  // empty in checkpoints written before it was recorded
};
// Loads DIR/model.safetensors; checks every tensor's name and shape against the config.
LoadedRun load_run(const std::string& dir);
// DIR/words.txt, the word list the run was trained on, checked against the run's vocabulary and
// fingerprint; its vocabulary is the checkpoint's.
Dataset load_run_dataset(const std::string& dir, const LoadedRun& run);

// Writes text to path through a temporary file and a rename.
void write_file_atomic(const std::string& path, const std::string& text);
nlohmann::json read_json_file(const std::string& path);

}  // namespace mm
