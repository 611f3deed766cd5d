// The `makemore` command's subcommands: each registers its options on the CLI11 app and runs
// as a thin call into the library.
#pragma once
#include <exception>
#include <functional>
#include <string>

#include <CLI/CLI.hpp>

namespace mm::cli {

// A number option's lower bound with a plain message ("must be at least 1, got 0"): CLI11's
// PositiveNumber / NonNegativeNumber print their upper bound, DBL_MAX, to 308 digits.
inline CLI::Validator at_least(int lo) {
  return CLI::Validator(
      [lo](std::string& text) -> std::string {
        try {
          std::size_t used = 0;
          const double v = std::stod(text, &used);
          if (used == text.size() && v >= lo) return {};
        } catch (const std::exception&) {
          return "must be a number, got '" + text + "'";
        }
        return "must be a number of at least " + std::to_string(lo) + ", got " + text;
      },
      lo > 0 ? "POSITIVE" : "NONNEGATIVE");
}

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
