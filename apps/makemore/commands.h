// The `makemore` command's subcommands: each registers its options on the CLI11 app and runs
// as a thin call into the library.
#pragma once
#include <functional>
#include <string>

#include <CLI/CLI.hpp>

namespace mm::cli {

// Each returns the process exit code when its subcommand was chosen.
using Runner = std::function<int()>;

Runner add_train(CLI::App& app);
Runner add_sample(CLI::App& app);
Runner add_eval(CLI::App& app);
Runner add_presets(CLI::App& app);
Runner add_bench(CLI::App& app);
Runner add_study(CLI::App& app);
Runner add_report(CLI::App& app);
Runner add_inspect(CLI::App& app);
Runner add_study_fidelity(CLI::App& study);  // a subcommand of `study`
Runner add_study_depth(CLI::App& study);     // a subcommand of `study`

// Shared helpers.
std::string default_words_path();  // data/names.txt near the cwd or the binary
bool stdout_is_terminal();

}  // namespace mm::cli
