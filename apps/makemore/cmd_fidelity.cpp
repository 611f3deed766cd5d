// `makemore study fidelity`: every lecture number beside ours (fidelity.h); this file parses the
// options and prints.
#include <fmt/format.h>

#include <cstdio>
#include <memory>

#include "commands.h"
#include "makemore/fidelity.h"

namespace mm::cli {

namespace {

struct FidelityArgs {
  study::FidelityOptions opt;
  bool json = false;
};

int run_fidelity(FidelityArgs a) {
  FILE* log = a.json ? stderr : stdout;
  if (a.opt.input.empty()) a.opt.input = default_words_path();
  auto say = [&](const std::string& line) {
    fmt::print(log, "{}\n", line);
    std::fflush(log);
    on_stop_say(
        fmt::format("interrupted; the trainings finished so far are kept in {}/runs/: the same command trains the "
                    "rest and writes the comparison",
                    a.opt.out_dir));
  };
  auto progress = [&](int done, int total) {
    fmt::print(log, "  {}/{} done\n", done, total);
    std::fflush(log);
  };
  const study::FidelityOutput out = study::run_fidelity(a.opt, say, progress);
  fmt::print(log, "{}", out.markdown);
  fmt::print(log, "written: {}/fidelity.md and fidelity.json\n", a.opt.out_dir);
  if (a.json) fmt::print("{}\n", out.summary.dump());
  return 0;
}

}  // namespace

Runner add_study_fidelity(CLI::App& study) {
  auto a = std::make_shared<FidelityArgs>();
  auto* c =
      study.add_subcommand("fidelity", "Every lecture number beside ours (split sizes, step-0 losses, loss log, final losses)");
  c->add_option("-i,--input", a->opt.input, "Word list (default: data/names.txt)");
  c->add_option("-o,--out", a->opt.out_dir, "Folder for fidelity.md, fidelity.json and runs/ (its trainings, kept for a rerun)")
      ->capture_default_str();
  c->add_option("--study", a->opt.study_dir,
                "A finished `study init` folder: adds the over-seeds comparison, and its lecture-seed runs are used instead of "
                "training them again");
  c->add_option("--jobs,-j", a->opt.jobs, "Trainings at a time (default: one per core)")->check(number_in(a->opt.jobs, 0, 256));
  c->add_flag("--json", a->json, "Print one JSON object on stdout");
  return [a] { return run_fidelity(*a); };
}

}  // namespace mm::cli
