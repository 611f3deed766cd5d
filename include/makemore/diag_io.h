// The diagnostics written out and read back: JSON as the report and plots read it, the text
// `makemore inspect` prints, and a run folder's diagnostics files (diagnostics.jsonl,
// update_ratio.jsonl, inspect.json). What they hold is snapshot.h's and doctor.h's.
#pragma once
#include <cstdint>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "makemore/doctor.h"
#include "makemore/snapshot.h"

namespace mm {

// ---- JSON -------------------------------------------------------------------------------------
// A snapshot's `layers`, `params`, `step`, `loss` (the saturation map only when asked), and a
// whole diagnosis (inspect --json, inspect.json).
nlohmann::json snapshot_json(const Snapshot& s, bool with_saturation_map);
nlohmann::json diagnosis_json(const Diagnosis& d);
nlohmann::json ratios_json(const UpdateRatios& u, const ParamStore& params);
// update_ratio.jsonl read back: the records of steps before `before`, in the order of params'
// trainable parameters (NaN where a record has none). A missing file is no records; a line that
// is not a record is an mm::Error naming the file and line.
std::vector<UpdateRatios> read_update_ratios(const std::string& path, const ParamStore& params, int64_t before);

// ---- text -------------------------------------------------------------------------------------
// The lecture's printed tables, unicode histograms and the findings.
std::string format_diagnosis(const Diagnosis& d);
std::string sparkline(const Histogram& h, int width = 50);  // ▁▂▃▄▅▆▇█, blank for empty bins

// ---- the run folder ---------------------------------------------------------------------------
inline constexpr const char* kDiagnosticsFile = "diagnostics.jsonl";   // a snapshot per line
inline constexpr const char* kUpdateRatioFile = "update_ratio.jsonl";  // {"step", "ratios": {name: log10}}
inline constexpr const char* kInspectFile = "inspect.json";            // diagnosis_json of the last step

// A .jsonl file of {"step": ...} records cut to those of steps before `before` (a resumed run
// appends from there; a run killed after its last checkpoint may have written later ones).
// Returns the number of records kept (with `counted`: of those holding that key).
int64_t keep_records_before(const std::string& path, int64_t before, const char* counted = nullptr);

// What `makemore train --diag-every N` attaches: the observer, streaming its snapshots and
// update ratios into DIR's two .jsonl files, and at the end the diagnosis as inspect.json.
class RunDiagnostics {
 public:
  // append: a resumed run adds to the folder's .jsonl files.
  RunDiagnostics(const std::string& dir, DiagOptions opt, bool append = false);
  ~RunDiagnostics();
  RunDiagnostics(const RunDiagnostics&) = delete;
  RunDiagnostics& operator=(const RunDiagnostics&) = delete;
  DiagObserver& observer() { return obs_; }
  // Flushes the .jsonl files, diagnoses the last snapshot and writes DIR/inspect.json.
  Diagnosis write_inspect(const Model& model, const std::string& name, int vocab_size);
  // A run without diagnostics must not leave an older run's files behind.
  static void remove_stale(const std::string& dir);
  void flush();  // the .jsonl files so far onto disk (a periodic checkpoint)

 private:
  std::string dir_;
  DiagObserver obs_;
  FILE* snap_ = nullptr;
  FILE* ratio_ = nullptr;
};

}  // namespace mm
