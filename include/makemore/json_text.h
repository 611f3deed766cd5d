// Reading JSON text that came from a file (a config, a run folder's result.json or logs, a
// checkpoint's metadata): nesting depth bounded, so no recursive walk of a parsed value (a
// copy, a dump, a comparison) can overflow the stack; a number out of range named with the
// field it sits in; and values quoted in error messages cut to a short excerpt.
#pragma once
#include <cstddef>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace mm {

// A config is four levels deep and each residual block adds two (an object and its "layers"),
// so the 64 nested blocks parse_config allows need about 134; a recursive walk of 256 levels
// uses a few hundred KB of stack at most.
inline constexpr int kMaxJsonDepth = 256;

// Parses `text` (comments allowed). Invalid JSON, a key given twice in one object, nesting
// deeper than kMaxJsonDepth or a number out of range is an mm::Error naming `source` and the
// line:column or field.
nlohmann::json parse_json_text(const std::string& text, const std::string& source);

// One record of a .jsonl log: nullopt when the line is not valid JSON (a torn last line) or
// nests deeper than kMaxJsonDepth.
std::optional<nlohmann::json> parse_json_line(const std::string& line);

// `v` as JSON text for an error message, at most `max` characters ("..." marks a cut).
std::string json_excerpt(const nlohmann::json& v, std::size_t max = 80);

// `s` for an error message: at most `max` bytes cut at a UTF-8 boundary, control characters
// shown as '?', "..." marking a cut.
std::string text_excerpt(const std::string& s, std::size_t max = 80);

}  // namespace mm
