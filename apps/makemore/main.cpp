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

namespace {

using Commands = std::vector<std::pair<CLI::App*, mm::cli::Runner>>;

// The version, and the kernel set this CPU gets (one binary holds several: docs/performance.md).
std::string version_text() {
  std::string kernels;
  try {
    std::string runs;
    for (const std::string& s : mm::kernel_sets()) runs += (runs.empty() ? "" : ", ") + s;
    kernels = fmt::format("kernels: {} (this CPU runs: {})", mm::kernel_set(), runs);
  } catch (const std::exception& e) {
    kernels = fmt::format("kernels: {}", e.what());
  }
  return "makemore.cpp " + mm::version_string() + "\n" + kernels;
}

// Every command, in the order --help lists them, with the function that runs it once parsed.
Commands add_commands(CLI::App& app) {
  Commands cmds;
  for (auto add : {mm::cli::add_train, mm::cli::add_sample, mm::cli::add_eval, mm::cli::add_presets, mm::cli::add_bench,
                   mm::cli::add_study, mm::cli::add_report, mm::cli::add_compare, mm::cli::add_inspect}) {
    mm::cli::Runner run = add(app);
    cmds.emplace_back(app.get_subcommands({}).back(), std::move(run));
  }
  return cmds;
}

// "makemore study init": the command line of the deepest command that was parsed.
std::string parsed_command_path(CLI::App& app) {
  std::string where = "makemore";
  for (const CLI::App* sub = &app;;) {
    const auto subs = sub->get_subcommands();
    if (subs.empty()) break;
    sub = subs.front();
    where += " " + sub->get_name();
  }
  return where;
}

// CLI11's message on one line, or ours where we can say better what was typed (and suggest).
std::string usage_error_text(CLI::App& app, const CLI::ParseError& e, int argc, char** argv, const Commands& cmds) {
  std::string what = e.what();
  while (!what.empty() && (what.back() == '\n' || what.back() == ' ')) what.pop_back();
  for (char& c : what)
    if (c == '\n') c = ' ';
  if (app.get_subcommands().empty() && argc > 1) {
    // Nothing matched a command: name what was typed rather than "A subcommand is required".
    const std::string first = argv[1];
    std::string names;
    for (const auto& [sub, run] : cmds) names += (names.empty() ? "" : ", ") + sub->get_name();
    return first.starts_with("-") ? fmt::format("unknown option '{}' (commands: {})", first, names)
                                  : fmt::format("unknown command '{}'{} (commands: {})", first,
                                                mm::cli::did_you_mean(first, mm::cli::command_names(app)), names);
  }
  if (const std::string unknown = mm::cli::unknown_argument(app); !unknown.empty()) return unknown;
  return what;
}

// Runs the parsed command; every failure is one line on stderr and exit 1.
int run_parsed(const Commands& cmds) {
  try {
    // The environment's kernel choices are read here, before any command writes a file: a bad
    // MAKEMORE_KERNELS, MAKEMORE_GEMM or MAKEMORE_TOKEN_LINEAR is an error up front, not in the
    // middle of a run.
    (void)mm::kernel_set();
    (void)mm::gemm_backend();
    (void)mm::token_linear();
    for (const auto& [sub, run] : cmds)
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

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "makemore.cpp: the makemore part 3 MLP (activations, gradients, BatchNorm), fast and exact.\n"
      "Start with `makemore train` (trains lecture-batchnorm on data/names.txt), then `makemore sample -o out`."};
  app.name("makemore");  // the usage line names the command, not the binary's path
  app.set_version_flag("--version", version_text);
  app.require_subcommand(1);
  const Commands cmds = add_commands(app);
  std::vector<std::string> help_path;
  CLI::App* help = app.add_subcommand("help", "Print the help of makemore or of a command (`makemore help study init`)");
  help->add_option("command", help_path, "A command, and its subcommand");
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
    fmt::print(stderr, "makemore: error: {}; see `{} --help`\n", usage_error_text(app, e, argc, argv, cmds),
               parsed_command_path(app));
    return 2;  // a usage error, as the shell's convention has it (runtime errors are 1)
  }
  if (help->parsed()) return mm::cli::print_help(app, help_path);
  return run_parsed(cmds);
}
