// A run folder's diagnostics files (diag_io.h): the observer streaming diagnostics.jsonl and
// update_ratio.jsonl, inspect.json at the end, and cutting the .jsonl files back for a resume.
#include <fmt/format.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>

#include "makemore/atomic_file.h"
#include "makemore/diag_io.h"
#include "makemore/error.h"
#include "makemore/json_text.h"

namespace mm {

using nlohmann::json;

RunDiagnostics::RunDiagnostics(const std::string& dir, DiagOptions opt, bool append) : dir_(dir), obs_(opt) {
  snap_ = open_log(dir + "/" + kDiagnosticsFile, append);
  ratio_ = open_log(dir + "/" + kUpdateRatioFile, append);
  obs_.on_snapshot = [this](const Snapshot& s) {
    write_log(snap_, snapshot_json(s, false).dump() + "\n", dir_ + "/" + kDiagnosticsFile);
  };
  obs_.on_ratios = [this](const UpdateRatios& u, const ParamStore& ps) {
    write_log(ratio_, ratios_json(u, ps).dump() + "\n", dir_ + "/" + kUpdateRatioFile);
  };
}

RunDiagnostics::~RunDiagnostics() {
  if (snap_) std::fclose(snap_);
  if (ratio_) std::fclose(ratio_);
}

void RunDiagnostics::remove_stale(const std::string& dir) {
  for (const char* f : {kDiagnosticsFile, kUpdateRatioFile, kInspectFile}) remove_file(dir + "/" + f);
}

void RunDiagnostics::flush() {
  // Onto the disk, not only out of the buffer: a train state saved next counts these records.
  for (auto [f, file] : {std::pair{snap_, kDiagnosticsFile}, std::pair{ratio_, kUpdateRatioFile}})
    fsync_file(f, dir_ + "/" + file);
}

int64_t keep_records_before(const std::string& path, int64_t before, const char* counted) {
  // A link is not the run's own log: it goes (the link, not its target), and the log starts anew.
  if (is_symlink(path)) {
    remove_file(path);
    return 0;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return 0;
  int64_t records = 0;
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(std::move(line));
  std::string kept;
  for (std::size_t k = 0; k < lines.size(); ++k) {
    const json j = parse_json_line(lines[k]).value_or(json(json::value_t::discarded));
    // A killed run can leave its last line torn: dropped. Any other line that is not a record
    // is kept, for the reader to report.
    if (j.is_discarded() && k + 1 == lines.size()) continue;
    const bool record = j.is_object() && j.contains("step") && j["step"].is_number_integer();
    if (record && j["step"].get<int64_t>() >= before) continue;
    records += record && (!counted || j.contains(counted)) ? 1 : 0;
    kept += lines[k] + "\n";
  }
  in.close();
  write_file_atomic(path, kept);
  return records;
}

Diagnosis RunDiagnostics::write_inspect(const Model& model, const std::string& name, int vocab_size) {
  flush();
  Diagnosis r;
  r.name = name;
  r.vocab_size = vocab_size;
  r.expected_loss = std::log(static_cast<double>(vocab_size));
  if (!obs_.losses().empty()) r.initial_loss = obs_.losses().front();
  r.losses = obs_.losses();
  r.ratios = obs_.ratios();
  if (obs_.last()) {
    r.snapshot = *obs_.last();
    r.steps_trained = r.snapshot.step;
  }
  r.findings = diagnose(r, model);
  write_file_atomic(dir_ + "/" + kInspectFile, diagnosis_json(r).dump(1) + "\n");
  return r;
}

}  // namespace mm
