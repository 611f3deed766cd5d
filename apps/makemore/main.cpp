// makemore: train, sample, evaluate and inspect character-level MLP language models.
// Every failure ends in one line on stderr and a non-zero exit.
#include <fmt/format.h>

#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "commands.h"
#include "makemore/error.h"
#include "makemore/gemm.h"
#include "makemore/layers.h"
#include "makemore/perf.h"
#include "makemore/version.h"

int main(int argc, char** argv) {
  CLI::App app{
      "makemore.cpp: the makemore part 3 MLP (activations, gradients, BatchNorm), fast and exact.\n"
      "Start with `makemore train` (trains lecture-batchnorm on data/names.txt), then `makemore sample -o out`."};
  app.name("makemore");  // the usage line names the command, not the binary's path
  // The version, and the kernel set this CPU gets (one binary holds several: docs/performance.md).
  app.set_version_flag("--version", [] {
    std::string kernels;
    try {
      std::string runs;
      for (const std::string& s : mm::kernel_sets()) runs += (runs.empty() ? "" : ", ") + s;
      kernels = fmt::format("kernels: {} (this CPU runs: {})", mm::kernel_set(), runs);
    } catch (const std::exception& e) {
      kernels = fmt::format("kernels: {}", e.what());
    }
    return "makemore.cpp " + mm::version_string() + "\n" + kernels;
  });
  app.require_subcommand(1);
  std::vector<std::pair<CLI::App*, mm::cli::Runner>> cmds;
  auto reg = [&](mm::cli::Runner (*add)(CLI::App&)) {
    const std::size_t before = app.get_subcommands({}).size();
    mm::cli::Runner r = add(app);
    auto subs = app.get_subcommands({});
    (void)before;
    cmds.emplace_back(subs.back(), std::move(r));
  };
  reg(mm::cli::add_train);
  reg(mm::cli::add_sample);
  reg(mm::cli::add_eval);
  reg(mm::cli::add_presets);
  reg(mm::cli::add_bench);
  reg(mm::cli::add_study);
  reg(mm::cli::add_report);
  reg(mm::cli::add_compare);
  reg(mm::cli::add_inspect);
  auto help_path = std::make_shared<std::vector<std::string>>();
  CLI::App* help = app.add_subcommand("help", "Print the help of makemore or of a command (`makemore help study init`)");
  help->add_option("command", *help_path, "A command, and its subcommand");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // One line, like every other error, pointing at the help of the command that was meant.
    std::string where = "makemore";
    for (const CLI::App* sub = &app;;) {
      const auto subs = sub->get_subcommands();
      if (subs.empty()) break;
      sub = subs.front();
      where += " " + sub->get_name();
    }
    std::string what = e.what();
    while (!what.empty() && (what.back() == '\n' || what.back() == ' ')) what.pop_back();
    for (char& c : what)
      if (c == '\n') c = ' ';
    if (app.get_subcommands().empty() && argc > 1) {
      // Nothing matched a command: name what was typed rather than "A subcommand is required".
      const std::string first = argv[1];
      std::string names;
      for (const auto& [sub, run] : cmds) names += (names.empty() ? "" : ", ") + sub->get_name();
      what = first.starts_with("-") ? fmt::format("unknown option '{}' (commands: {})", first, names)
                                    : fmt::format("unknown command '{}'{} (commands: {})", first,
                                                  mm::cli::did_you_mean(first, mm::cli::command_names(app)), names);
    } else if (const std::string unknown = mm::cli::unknown_argument(app); !unknown.empty()) {
      what = unknown;
    }
    fmt::print(stderr, "makemore: error: {}; see `{} --help`\n", what, where);
    return 2;  // a usage error, as the shell's convention has it (runtime errors are 1)
  }
  if (help->parsed()) return mm::cli::print_help(app, *help_path);
  try {
    // The environment's kernel choices are read here, before any command writes a file: a bad
    // MAKEMORE_KERNELS, MAKEMORE_GEMM or MAKEMORE_TOKEN_LINEAR is an error up front, not in the
    // middle of a run.
    (void)mm::kernel_set();
    (void)mm::gemm_backend();
    (void)mm::token_linear();
    for (auto& [sub, run] : cmds)
      if (sub->parsed()) return run();
  } catch (const mm::UsageError& e) {
    std::fflush(stdout);
    fmt::print(stderr, "makemore: error: {}\n", e.what());
    return 2;
  } catch (const mm::Error& e) {
    std::fflush(stdout);
    fmt::print(stderr, "makemore: error: {}\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fflush(stdout);
    fmt::print(stderr, "makemore: error: out of memory; use a smaller network or batch size\n");
    return 1;
  } catch (const std::exception& e) {
    std::fflush(stdout);
    fmt::print(stderr, "makemore: error: {}\n", e.what());
    return 1;
  }
  return 0;
}
