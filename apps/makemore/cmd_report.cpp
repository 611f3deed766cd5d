// `makemore report`: writes a run folder's self-contained HTML report (and its figures as
// files); the page itself is built by the library (report.h).
#include <fmt/format.h>

#include <memory>

#include "commands.h"
#include "makemore/report.h"

namespace mm::cli {

namespace {

struct ReportArgs {
  std::string dir = "out", out_file;
};

int run_report(const ReportArgs& a) {
  ReportOptions opt;
  opt.run_dir = a.dir;
  opt.out_file = a.out_file;
  const ReportResult r = write_report(opt);
  for (const auto& m : r.missing) fmt::print(stderr, "makemore: note: {}\n", m);
  fmt::print("{} ({} figures)\n", r.html_path, r.figures.size());
  return 0;
}

}  // namespace

Runner add_report(CLI::App& app) {
  auto a = std::make_shared<ReportArgs>();
  auto* c = app.add_subcommand("report", "Write a run folder's report: one self-contained HTML page with the figures");
  c->add_option("-o,--out", a->dir, "Run folder")->capture_default_str();
  // Not --out: every subcommand uses -o/--out for the run folder.
  c->add_option("--html", a->out_file, "Where to write the page (default: DIR/report.html)");
  return [a] { return run_report(*a); };
}

}  // namespace mm::cli
