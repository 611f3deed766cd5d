// `makemore compare RUN RUN...`: several run folders on one self-contained HTML page (and as
// JSON); the comparison itself is the library's (compare.h).
#include <fmt/format.h>

#include <memory>

#include "commands.h"
#include "makemore/compare.h"

namespace mm::cli {

namespace {

struct CompareArgs {
  std::vector<std::string> runs;
  std::string out_file = kCompareFile;
  bool json = false;
};

int run_compare(const CompareArgs& a) {
  const CompareResult r = write_compare({a.runs, a.out_file});
  for (const auto& m : r.missing) fmt::print(stderr, "makemore: note: {}\n", m);
  for (const auto& n : r.notes) fmt::print(stderr, "makemore: note: {}\n", n);
  if (a.json)
    fmt::print("{}\n", r.json.dump());
  else
    fmt::print("{} ({} runs, {} figures)\n", r.html_path, a.runs.size(), r.figures.size());
  return 0;
}

}  // namespace

Runner add_compare(CLI::App& app) {
  auto a = std::make_shared<CompareArgs>();
  auto* c = app.add_subcommand("compare",
                               "Compare run folders on one HTML page: loss curves overlaid, results, per-layer statistics and "
                               "saturation maps side by side");
  c->add_option("runs", a->runs, "Two or more run folders")->required()->expected(2, -1);
  c->add_option("--html", a->out_file, "Where to write the page")->capture_default_str();
  c->add_flag("--json", a->json, "Print the comparison as one JSON object on stdout (the page is written too)");
  return [a] { return run_compare(*a); };
}

}  // namespace mm::cli
