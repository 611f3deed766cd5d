// The lecture's networks as config files shipped inside the binary (presets/*.json).
#pragma once
#include <string>
#include <vector>

#include "makemore/config.h"

namespace mm {

struct EmbeddedPreset {
  const char* name;
  const char* text;  // the file, verbatim
};
const std::vector<EmbeddedPreset>& embedded_presets();

constexpr const char* kDefaultPreset = "lecture-batchnorm";
// Throws mm::Error listing the available names when unknown.
const EmbeddedPreset& find_preset(const std::string& name);
Config load_preset(const std::string& name);

}  // namespace mm
