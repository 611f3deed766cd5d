// Helpers shared by the subcommands.
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "commands.h"

namespace mm::cli {

std::string default_words_path() {
  namespace fs = std::filesystem;
  if (fs::exists("data/names.txt")) return "data/names.txt";
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    for (const fs::path& p : {exe.parent_path() / "../data/names.txt", exe.parent_path() / "data/names.txt"})
      if (fs::exists(p)) return fs::weakly_canonical(p).string();
  }
  return "data/names.txt";  // missing: load_words names it and says how to fix it
}

namespace {
// Edit distance, a swap of neighbours counting one.
std::size_t edit_distance(const std::string& a, const std::string& b) {
  const std::size_t n = a.size(), m = b.size();
  std::vector<std::vector<std::size_t>> d(n + 1, std::vector<std::size_t>(m + 1));
  for (std::size_t i = 0; i <= n; ++i) d[i][0] = i;
  for (std::size_t j = 0; j <= m; ++j) d[0][j] = j;
  for (std::size_t i = 1; i <= n; ++i)
    for (std::size_t j = 1; j <= m; ++j) {
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  return d[n][m];
}

// The chain of commands the parse chose: makemore, train; makemore, study, init.
std::vector<CLI::App*> chosen(CLI::App& app) {
  std::vector<CLI::App*> chain{&app};
  for (;;) {
    const auto subs = chain.back()->get_subcommands();
    if (subs.empty()) return chain;
    chain.push_back(subs.front());
  }
}

std::string command_line(const std::vector<CLI::App*>& chain) {
  std::string s;
  for (const CLI::App* a : chain) s += (s.empty() ? "" : " ") + a->get_name();
  return s;
}
}  // namespace

std::string did_you_mean(const std::string& typed, const std::vector<std::string>& names) {
  std::string best;
  std::size_t best_d = 3;  // at most 2 edits, and fewer than half of what was typed
  for (const auto& n : names) {
    const std::size_t d = edit_distance(typed, n);
    if (d < best_d && 2 * d < typed.size()) {
      best = n;
      best_d = d;
    }
  }
  return best.empty() ? "" : fmt::format(" (did you mean '{}'?)", best);
}

std::vector<std::string> command_names(const CLI::App& app) {
  std::vector<std::string> out;
  for (const CLI::App* sub : app.get_subcommands({})) out.push_back(sub->get_name());
  return out;
}

std::string unknown_argument(CLI::App& app) {
  const std::vector<CLI::App*> chain = chosen(app);
  CLI::App& last = *chain.back();
  for (const std::string& arg : app.remaining(true)) {
    if (arg.starts_with("-")) {
      const std::string name = arg.substr(0, arg.find('='));
      std::vector<std::string> names;
      for (const CLI::Option* o : last.get_options()) {
        for (const auto& l : o->get_lnames()) names.push_back("--" + l);
        for (const auto& s : o->get_snames()) names.push_back("-" + s);
      }
      return fmt::format("unknown option '{}' for `{}`{}", name, command_line(chain), did_you_mean(name, names));
    }
    if (!last.get_subcommands({}).empty())
      return fmt::format("unknown command '{}' for `{}`{}", arg, command_line(chain), did_you_mean(arg, command_names(last)));
  }
  return "";
}

int print_help(CLI::App& app, const std::vector<std::string>& path) {
  CLI::App* target = &app;
  std::string prefix;
  for (const std::string& name : path) {
    CLI::App* next = nullptr;
    for (CLI::App* sub : target->get_subcommands({}))
      if (sub->get_name() == name && sub->get_name() != "help") next = sub;
    if (!next) {
      fmt::print(stderr, "makemore: error: unknown command '{}'{}; see `makemore help`\n", name,
                 did_you_mean(name, command_names(*target)));
      return 2;
    }
    prefix += (prefix.empty() ? "" : " ") + target->get_name();
    target = next;
  }
  // The formatter directly: App::help() would show the chosen subcommand's, `help` itself.
  const std::string name = prefix.empty() ? target->get_name() : prefix + " " + target->get_name();
  fmt::print("{}", target->get_formatter()->make_help(target, name, CLI::AppFormatMode::Normal));
  return 0;
}

bool stdout_is_terminal() { return isatty(STDOUT_FILENO) == 1; }

namespace {
std::atomic<bool> g_stop{false};
volatile std::sig_atomic_t g_stop_signal = 0;
extern "C" void on_stop_signal(int sig) {
  g_stop_signal = sig;
  g_stop.store(true, std::memory_order_relaxed);
  std::signal(sig, SIG_DFL);
  static const char msg[] = "\nmakemore: stopping: saving what is done first (press again to quit at once)\n";
  [[maybe_unused]] const ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);  // async-signal-safe
}
}  // namespace

StopSignals::StopSignals() {
  static_assert(std::atomic<bool>::is_always_lock_free);
  g_stop.store(false);
  g_stop_signal = 0;
  std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);
}

StopSignals::~StopSignals() {
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
}

const std::atomic<bool>* StopSignals::flag() const { return &g_stop; }
int StopSignals::last_signal() { return static_cast<int>(g_stop_signal); }

namespace {
char g_stop_message[1024];  // fixed storage: the handler may only call async-signal-safe code
std::size_t g_stop_message_len = 0;
void (*g_stop_also)(int fd) = nullptr;
extern "C" void say_and_exit(int sig) {
  // write(2) and _exit(2) are async-signal-safe; the worker threads end with the process.
  static const char prefix[] = "\nmakemore: ";
  [[maybe_unused]] ssize_t w = write(STDERR_FILENO, prefix, sizeof prefix - 1);
  if (g_stop_also) g_stop_also(STDERR_FILENO);
  w = write(STDERR_FILENO, g_stop_message, g_stop_message_len);
  _exit(128 + sig);
}
}  // namespace

void on_stop_also(void (*fn)(int fd)) { g_stop_also = fn; }

void on_stop_say(const std::string& message) {
  const std::string line = message + "\n";
  g_stop_message_len = std::min(line.size(), sizeof(g_stop_message));
  std::memcpy(g_stop_message, line.data(), g_stop_message_len);
  std::signal(SIGINT, say_and_exit);
  std::signal(SIGTERM, say_and_exit);
}

}  // namespace mm::cli
