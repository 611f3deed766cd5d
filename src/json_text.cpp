// JSON from files (json_text.h): one parser callback tracks where the parser is (for the
// messages), refuses a key given twice and nesting beyond kMaxJsonDepth.
#include "makemore/json_text.h"

#include <fmt/format.h>

#include <set>
#include <vector>

#include "makemore/error.h"

namespace mm {

using json = nlohmann::json;

std::string text_excerpt(const std::string& s, std::size_t max) {
  std::size_t cut = std::min(s.size(), max);
  while (cut < s.size() && cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xc0) == 0x80) --cut;  // UTF-8 boundary
  std::string out;
  out.reserve(cut + 3);
  for (std::size_t i = 0; i < cut; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    out += c < 0x20 || c == 0x7f ? '?' : s[i];
  }
  if (cut < s.size()) out += "...";
  return out;
}

std::string json_excerpt(const json& v, std::size_t max) {
  // Depth is bounded by the parser, and an excerpt of a container needs only its start.
  if (v.is_array() && v.size() > max) return fmt::format("[an array of {} values]", v.size());
  if (v.is_object() && v.size() > max) return fmt::format("{{an object of {} keys}}", v.size());
  return text_excerpt(v.dump(-1, ' ', false, json::error_handler_t::replace), max);
}

namespace {

// Where the parser is: one frame per open object or array.
class Tracker {
 public:
  explicit Tracker(const std::string& source) : source_(source) {}

  bool operator()(int, json::parse_event_t event, json& parsed) {
    using E = json::parse_event_t;
    switch (event) {
      case E::object_start:
      case E::array_start:
        if (frames_.size() >= static_cast<std::size_t>(kMaxJsonDepth))
          throw Error(fmt::format("{}: {}: nested more than {} levels deep; the file is damaged or not what it should be",
                                  source_, where(), kMaxJsonDepth));
        frames_.push_back({event == E::array_start, 0, {}, {}});
        break;
      case E::key:
        if (!frames_.empty() && parsed.is_string()) {
          Frame& f = frames_.back();
          f.key = parsed.get<std::string>();
          if (!f.keys.insert(f.key).second && duplicate_.empty()) duplicate_ = where();
        }
        break;
      case E::value:
        if (!frames_.empty() && frames_.back().array) ++frames_.back().index;
        break;
      case E::object_end:
      case E::array_end:
        if (!frames_.empty()) frames_.pop_back();
        if (!frames_.empty() && frames_.back().array) ++frames_.back().index;
        break;
    }
    return true;
  }

  // "train.lr", "model.layers[2].n"; "top level" outside every object.
  std::string where() const {
    std::string s;
    for (const Frame& f : frames_) {
      if (f.array) {
        s += fmt::format("[{}]", f.index);
      } else {
        if (!s.empty()) s += '.';
        s += text_excerpt(f.key, 40);
      }
    }
    return s.empty() ? "top level" : text_excerpt(s, 80);
  }
  const std::string& duplicate() const { return duplicate_; }

 private:
  struct Frame {
    bool array;
    std::size_t index;
    std::string key;
    std::set<std::string> keys;
  };
  const std::string& source_;
  std::vector<Frame> frames_;
  std::string duplicate_;
};

// e.byte (1-based) as line:column.
std::string line_col(const std::string& text, std::size_t byte) {
  std::size_t line = 1, col = 1;
  for (std::size_t i = 0; i + 1 < byte && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++line;
      col = 1;
    } else {
      ++col;
    }
  }
  return fmt::format("{}:{}", line, col);
}

}  // namespace

json parse_json_text(const std::string& text, const std::string& source) {
  Tracker tracker(source);
  try {
    json j = json::parse(text, std::ref(tracker), true, /*ignore_comments=*/true);
    // A key given twice would silently take its last value ("steps": 200000, then "steps": 7).
    if (!tracker.duplicate().empty())
      throw Error(fmt::format("{}: {}: the key appears twice in one object; keep one of them", source, tracker.duplicate()));
    return j;
  } catch (const json::parse_error& e) {
    std::string what = e.what();
    const auto pos = what.find("syntax error");
    if (pos != std::string::npos) what = what.substr(pos);
    throw Error(fmt::format("{}:{}: invalid JSON ({}); fix the file", source, line_col(text, e.byte), text_excerpt(what, 160)));
  } catch (const json::out_of_range& e) {  // 406: a number beyond double's range (1e999)
    std::string what = e.what();           // "[json.exception.out_of_range.406] number overflow parsing '1e999'"
    if (const auto cut = what.find("] "); cut != std::string::npos) what = what.substr(cut + 2);
    throw Error(fmt::format("{}: {}: {}: a number too large for a double; write a finite number", source, tracker.where(),
                            text_excerpt(what, 120)));
  } catch (const json::exception& e) {
    throw Error(fmt::format("{}: {}: invalid JSON ({})", source, tracker.where(), text_excerpt(e.what(), 120)));
  }
}

std::optional<json> parse_json_line(const std::string& line) {
  static const std::string source = "a log line";
  Tracker tracker(source);
  try {
    json j = json::parse(line, std::ref(tracker), false);
    if (j.is_discarded()) return std::nullopt;
    return j;
  } catch (const std::exception&) {  // too deep (the parser's own errors are not thrown here)
    return std::nullopt;
  }
}

}  // namespace mm
