// `makemore presets`: list the built-in networks, or print one to copy and edit.
#include <fmt/format.h>

#include <memory>

#include "commands.h"
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
    for (const auto& p : embedded_presets()) {
      const Config cfg = load_preset(p.name);
      Model m(cfg, 27);
      fmt::print("{:<22} {:>7} params (27 tokens)  {}\n", p.name, m.num_params(), cfg.description);
    }
    fmt::print("\nPrint one with `makemore presets show NAME`; train it with `makemore train --preset NAME`.\n");
    return 0;
  };
}

}  // namespace mm::cli
