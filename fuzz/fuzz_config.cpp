// libFuzzer harness: config text through the JSON reader, the config parser and the network
// layout it describes (names and shapes, nothing allocated). Every input must end in a Config
// or an mm::Error; a layer list that does not fit together is std::invalid_argument, as
// Run::create reports it.
#include <stdexcept>
#include <string>

#include "makemore/config.h"
#include "makemore/error.h"
#include "makemore/json_text.h"
#include "makemore/model.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const nlohmann::json j = mm::parse_json_text(text, "fuzz.json");
    (void)mm::json_excerpt(j);
    const mm::Config cfg = mm::parse_config(j, "fuzz.json");
    (void)cfg.to_json().dump();
    (void)mm::Model::layout_of(cfg, 27);
  } catch (const mm::Error&) {
  } catch (const std::invalid_argument&) {
  }
  return 0;
}
