// `makemore presets`: list the built-in networks, or print one to copy and edit.
#include <fmt/format.h>

#include <algorithm>
#include <memory>
#include <string>

#include "commands.h"
#include "makemore/data.h"
#include "makemore/error.h"
#include "makemore/model.h"
#include "makemore/presets.h"

namespace mm::cli {

Runner add_presets(CLI::App& app) {
  auto name = std::make_shared<std::string>();
  auto* c = app.add_subcommand("presets", "List the built-in networks; `presets show NAME` prints one as a config file");
  auto* show = c->add_subcommand("show", "Print a preset's config file (copy it, edit it, pass it with --config)");
  show->add_option("name", *name, "Preset name")->required();
  return [c, show, name] {
    if (show->parsed()) {
      fmt::print("{}", find_preset(*name).text);
      return 0;
    }
    (void)c;
    // The parameter count depends on the vocabulary: the default word list's, when it is there.
    int vocab = 27;
    std::string vocab_from = "27 tokens assumed: data/names.txt not found";
    try {
      const std::string path = default_words_path();
      vocab = Dataset::load(path).vocab().size();
      vocab_from = fmt::format("{} tokens: the vocabulary of {}", vocab, path);
    } catch (const Error&) {
    }
    std::size_t width = 0;
    for (const auto& p : embedded_presets()) width = std::max(width, std::string(p.name).size());
    for (const auto& p : embedded_presets()) {
      const Config cfg = load_preset(p.name);
      Model m(cfg, vocab);
      fmt::print("{:<{}}  {:>7} params  {}\n", p.name, width, m.num_params(), cfg.description);
    }
    fmt::print("\nParameters counted with {}.\n", vocab_from);
    fmt::print("\nPrint one with `makemore presets show NAME`; train it with `makemore train --preset NAME`.\n");
    return 0;
  };
}

}  // namespace mm::cli
