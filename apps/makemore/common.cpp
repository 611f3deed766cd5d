// Helpers shared by the subcommands.
#include <unistd.h>

#include <filesystem>

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

}  // namespace mm::cli
