// The `makemore` command's subcommands: each registers its options on the CLI11 app and runs
// as a thin call into the library.
#pragma once
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <charconv>
#include <cmath>
#include <exception>
#include <functional>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

namespace mm::cli {

// (CLI11's own PositiveNumber / NonNegativeNumber print their upper bound, DBL_MAX, to 308
// digits, and its Range lets nan through.)
// Option value checks with one message style. The option's variable fixes the kind of number:
// a whole number for integer options ("2.5", "1e3" and values past the type's range are
// refused by name, not clamped), a finite one for floating options (nan, inf refused).
template <class T>
CLI::Validator number_in(const T& /*option variable: its type*/, T lo, T hi = std::numeric_limits<T>::max()) {
  static_assert(std::is_arithmetic_v<T>);
  return CLI::Validator(
      [lo, hi](std::string& text) -> std::string {
        T v{};
        const char* b = text.data();
        const char* e = b + text.size();
        const auto [end, ec] = std::from_chars(b, e, v);
        bool ok = ec == std::errc() && end == e && !text.empty();
        if constexpr (std::is_floating_point_v<T>) ok = ok && std::isfinite(v);
        if (ok && v >= lo && v <= hi) return {};
        const std::string kind = std::is_integral_v<T> ? "a whole number" : "a finite number";
        const bool unbounded = hi == std::numeric_limits<T>::max() && ec != std::errc::result_out_of_range;
        const std::string range = unbounded ? fmt::format("of at least {}", lo) : fmt::format("from {} to {}", lo, hi);
        return "must be " + kind + " " + range + ", got '" + text + "'";
      },
      // What --help shows after the type: the range the check enforces.
      hi != std::numeric_limits<T>::max()   ? fmt::format("{} to {}", lo, hi)
      : lo == T(0)                          ? std::string("NONNEGATIVE")
      : lo == T(1) && std::is_integral_v<T> ? std::string("POSITIVE")
                                            : fmt::format("at least {}", lo));
}
// The common case: any value from lo up.
template <class T, class L>
CLI::Validator at_least(const T& target, L lo) {
  return number_in(target, static_cast<T>(lo));
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
Runner add_compare(CLI::App& app);
Runner add_inspect(CLI::App& app);
Runner add_study_fidelity(CLI::App& study);  // a subcommand of `study`
Runner add_study_depth(CLI::App& study);     // a subcommand of `study`
Runner add_study_sweep(CLI::App& study);     // a subcommand of `study`

// Command-line conventions (common.cpp). " (did you mean 'train'?)" when `typed` is a likely typo
// of one of `names`, else "".
std::string did_you_mean(const std::string& typed, const std::vector<std::string>& names);
std::vector<std::string> command_names(const CLI::App& app);  // its subcommands
// After a failed parse: "unknown option '--stpes' for `makemore train` (did you mean '--steps'?)"
// for the first argument no command took, or "" when every argument was taken.
std::string unknown_argument(CLI::App& app);
// `makemore help [COMMAND...]`: the help of the command named, exit 0; an unknown one is a usage
// error (exit 2).
int print_help(CLI::App& app, const std::vector<std::string>& path);

// Shared helpers.
std::string default_words_path();  // data/names.txt near the cwd or the binary
// Until the process ends, Ctrl-C or SIGTERM prints `message` (one line) and exits with 128 +
// the signal: a study keeps each finished training on disk, so stopping it loses only the
// ones in flight, and the message says how to go on.
void on_stop_say(const std::string& message);
// Also written by that signal's handler, just before the message (fn must be async-signal-safe).
void on_stop_also(void (*fn)(int fd));
bool stdout_is_terminal();

// While alive, Ctrl-C (SIGINT) or SIGTERM raises flag() (a training polls it between steps:
// it saves what is done and ends) and says so on stderr; a second signal ends the process at
// once. Destroyed: the signals end the process as usual again.
class StopSignals {
 public:
  StopSignals();
  ~StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;
  const std::atomic<bool>* flag() const;
  static int last_signal();  // the signal that raised the flag (0: none)
};

}  // namespace mm::cli
