// Comparing runs: the lecture is a sequence of before/after views (27.9 vs 3.3 at
// initialization, saturated vs healthy tanh, with and without BatchNorm), so several run
// folders side by side on one self-contained HTML page (page.h) and as JSON: the loss curves
// (and validation curves) overlaid, a table of results (final losses, parameters, initial vs
// expected loss -ln(1/V), findings), per-layer activation / gradient statistics side by side,
// and the saturation maps side by side. Runs that differ in vocabulary or layer stack still
// compare where that makes sense; the page and the JSON say where it does not.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "makemore/run_record.h"

namespace mm {

inline constexpr const char* kCompareFile = "compare.html";

struct CompareOptions {
  std::vector<std::string> run_dirs;  // two or more run folders
  std::string out_file = kCompareFile;
};

struct CompareResult {
  std::string html_path;
  std::vector<std::string> figures;  // ids of the figures drawn, in page order
  std::vector<std::string> notes;    // where the runs do not compare (vocabulary, layers, ...)
  std::vector<std::string> missing;  // "<run>: <what its folder lacks>"
  nlohmann::json json;               // compare_json of the runs
};

// The comparison as data: per run its label, folder, results, findings, per-layer statistics
// and saturation map summary; "comparable" (same vocabulary, same layer stack) and the notes.
nlohmann::json compare_json(const std::vector<RunRecord>& runs);

// One line per way the runs do not compare: different vocabularies (losses over different
// alphabets), different layer stacks (per-layer statistics not aligned), a run without losses
// or diagnostics.
std::vector<std::string> compare_notes(const std::vector<RunRecord>& runs);

// Reads each folder (read_run_record) and writes the page. Throws mm::Error with fewer than two
// folders, when one is not a run folder, or when the page cannot be written.
CompareResult write_compare(const CompareOptions& opt);

}  // namespace mm
