// The run report: one self-contained HTML file (figures inline as <svg> or data: URIs, no
// scripts, nothing fetched) built from a run folder: config, losses, samples, the doctor's
// findings and the lecture's figures. It draws whatever the folder holds and says what is
// missing, so it works on a half-finished run. Figures are also written one per file into
// DIR/figures/. Drawing is plot.h's job; the statistics come from the diagnostics files.
#pragma once
#include <string>
#include <vector>

namespace mm {

// The diagnostics files it reads are named in diag.h (kDiagnosticsFile, kInspectFile, ...).
inline constexpr const char* kReportFile = "report.html";
inline constexpr const char* kFiguresDir = "figures";  // inside the run folder

// Removes a run folder's report.html and figures/*.svg|png (a training that replaces or
// continues the run makes them stale; `makemore report` draws them again).
void remove_report(const std::string& run_dir);

struct ReportOptions {
  std::string run_dir;
  std::string out_file;       // empty: run_dir/report.html
  int samples = 20;           // sampled with the run's seed + 10, as the lecture
  bool write_figures = true;  // run_dir/figures/*.svg and saturation.png
};

struct ReportResult {
  std::string html_path;
  std::vector<std::string> figures;  // ids of the figures drawn, in page order
  std::vector<std::string> missing;  // one line per input the folder lacked or could not be read
};

// Throws mm::Error when run_dir is not a folder or the output cannot be written; an absent
// or unreadable input only adds a line to `missing` (and to the page).
ReportResult write_report(const ReportOptions& opt);

}  // namespace mm
