// `makemore study fidelity`, as an analysis on the study engine: every number of the lecture
// (docs/lecture-numbers.md) beside ours, computed now by this program, so
// "reproduces the lecture" is checked, not typed. Writes fidelity.md and fidelity.json into the
// output folder, whose runs/ is the engine's store (a finished `study init` folder's store is
// read too, so its lecture-seed runs are not trained again).
#pragma once
#include <functional>
#include <nlohmann/json.hpp>
#include <string>

namespace mm::study {

struct FidelityOptions {
  std::string input;  // word list
  std::string out_dir = "fidelity";
  std::string study_dir;  // a finished `study init` folder: adds the over-seeds rows; empty: none
  int jobs = 0;           // trainings at a time; 0: one per core
};

struct FidelityOutput {
  nlohmann::json summary;  // what fidelity.json holds: matched, total, seconds, rows
  std::string markdown;    // what fidelity.md holds
};

// say: what is about to be trained; progress: after each training.
FidelityOutput run_fidelity(const FidelityOptions& opt, const std::function<void(const std::string&)>& say,
                            const std::function<void(int done, int total)>& progress);

}  // namespace mm::study
