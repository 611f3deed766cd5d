// Helpers shared by the subcommands.
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <string>

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
extern "C" void say_and_exit(int sig) {
  // write(2) and _exit(2) are async-signal-safe; the worker threads end with the process.
  [[maybe_unused]] const ssize_t w = write(STDERR_FILENO, g_stop_message, g_stop_message_len);
  _exit(128 + sig);
}
}  // namespace

void on_stop_say(const std::string& message) {
  const std::string line = "\nmakemore: " + message + "\n";
  g_stop_message_len = std::min(line.size(), sizeof(g_stop_message));
  std::memcpy(g_stop_message, line.data(), g_stop_message_len);
  std::signal(SIGINT, say_and_exit);
  std::signal(SIGTERM, say_and_exit);
}

}  // namespace mm::cli
