// Looking up the presets compiled into the binary.
#include "makemore/presets.h"

#include <fmt/format.h>

#include "makemore/error.h"

namespace mm {

const EmbeddedPreset& find_preset(const std::string& name) {
  for (const auto& p : embedded_presets())
    if (name == p.name) return p;
  std::string names;
  for (const auto& p : embedded_presets()) names += (names.empty() ? "" : ", ") + std::string(p.name);
  throw Error(fmt::format("unknown preset '{}'; available: {} (see `makemore presets`)", name, names));
}

Config load_preset(const std::string& name) {
  const auto& p = find_preset(name);
  const std::string source = "preset " + name;
  return parse_config(parse_json_text(p.text, source), source);
}

}  // namespace mm
