// Words in, training examples out: the word-file reader with its user-facing error messages,
// a strict UTF-8 codec, the code-point vocabulary, the lecture's context windows and the seeded
// 80/10/10 split. The shuffle itself is PyRandom's (rng.cpp); printing notices is the CLI's.
#include "makemore/data.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string_view>
#include <system_error>

#include "makemore/error.h"
#include "makemore/rng.h"

namespace mm {
namespace {

constexpr const char* kTextFix = "the file must be UTF-8 text, one item per line";

// strerror's text reads as a clause inside our message, so drop its capital.
std::string lower_strerror(int err) {
  std::string s = std::strerror(err);
  if (!s.empty()) s[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(s[0])));
  return s;
}

std::string hex_byte(unsigned char b) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "0x%02x", b);
  return buf;
}

std::string code_point_name(char32_t c) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "U+%04X", static_cast<unsigned>(c));
  return buf;
}

// Python's str.isspace() set, plus the invisible U+200B and U+FEFF: a BOM or a zero-width space
// at the edge of a line is an editor artifact, never part of a name.
bool is_strippable(char32_t c) {
  switch (c) {
    case 0x09:
    case 0x0A:
    case 0x0B:
    case 0x0C:
    case 0x0D:
    case 0x1C:
    case 0x1D:
    case 0x1E:
    case 0x1F:
    case 0x20:
    case 0x85:
    case 0xA0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202F:
    case 0x205F:
    case 0x3000:
    case 0x200B:
    case 0xFEFF:
      return true;
    default:
      return c >= 0x2000 && c <= 0x200A;
  }
}

std::u32string strip(const std::u32string& s) {
  std::size_t b = 0, e = s.size();
  while (b < e && is_strippable(s[b])) ++b;
  while (e > b && is_strippable(s[e - 1])) --e;
  return s.substr(b, e - b);
}

struct Line {
  std::string_view text;  // without its line break
  std::size_t number;     // 1-based
};

// Splits on \n, \r\n and a lone \r, as Python's universal newlines do. A last line without a
// break counts only if it has bytes, so a trailing newline adds no empty line.
std::vector<Line> split_lines(std::string_view data) {
  std::vector<Line> lines;
  std::size_t start = 0, number = 1;
  for (std::size_t i = 0; i < data.size(); ++i) {
    if (data[i] != '\n' && data[i] != '\r') continue;
    lines.push_back({data.substr(start, i - start), number++});
    if (data[i] == '\r' && i + 1 < data.size() && data[i + 1] == '\n') ++i;
    start = i + 1;
  }
  if (start < data.size()) lines.push_back({data.substr(start), number});
  return lines;
}

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};

// Reads at most kMaxWordListBytes (+1, to tell a file at the limit from a larger one).
std::string read_capped(std::FILE* f, const std::string& path) {
  std::string data;
  char buf[1 << 16];
  for (;;) {
    const std::size_t n = std::fread(buf, 1, sizeof buf, f);
    data.append(buf, n);
    if (data.size() > kMaxWordListBytes)
      throw Error(fmt::format("{}: larger than the word list limit of {} MiB; pass a smaller list (one item per line)", path,
                              kMaxWordListBytes >> 20));
    if (n < sizeof buf) break;
  }
  if (std::ferror(f))
    throw Error(path + ": cannot read (" + lower_strerror(errno ? errno : EIO) +
                "); check its permissions or pass another word list with -i FILE");
  return data;
}

std::string read_file_bytes(const std::string& path) {
  if (path.empty()) throw Error("no word list given; pass one with -i FILE");
  if (path == "-") return read_capped(stdin, "-");  // standard input
  std::error_code ec;
  const auto st = std::filesystem::status(path, ec);
  if (ec) {
    if (ec == std::errc::no_such_file_or_directory || ec == std::errc::not_a_directory)
      throw NotFound(path + ": no such file; pass an existing word list with -i FILE");
    throw Error(path + ": cannot read (" + lower_strerror(ec.value()) +
                "); check its permissions or pass another word list with -i FILE");
  }
  if (!std::filesystem::exists(st)) throw NotFound(path + ": no such file; pass an existing word list with -i FILE");
  if (std::filesystem::is_directory(st)) throw Error(path + ": is a directory, not a file; pass a word list with -i FILE");
  // A device or a pipe (/dev/zero, /dev/urandom) can be endless: a word list is a regular file, or
  // standard input given as "-".
  if (!std::filesystem::is_regular_file(st))
    throw Error(path + ": is not a regular file (a device or a pipe); pass a word list file, or - to read standard input");

  errno = 0;
  std::unique_ptr<std::FILE, FileCloser> f(std::fopen(path.c_str(), "rb"));
  if (!f) {
    throw Error(path + ": cannot read (" + lower_strerror(errno ? errno : EIO) +
                "); check its permissions or pass another word list with -i FILE");
  }
  return read_capped(f.get(), path);
}

}  // namespace

WordList load_words(const std::string& path) {
  const std::string data = read_file_bytes(path);
  if (data.empty()) throw Error(path + ": the file is empty; it must hold one item per line");

  const std::vector<Line> lines = split_lines(data);
  // NUL is valid UTF-8, so look for it over the whole file first: a binary file should be
  // called binary, not blamed for whichever invalid byte happens to come first.
  for (const Line& line : lines) {
    if (line.text.find('\0') != std::string_view::npos) {
      throw Error(path + ": looks like a binary file (NUL byte on line " + std::to_string(line.number) + "); " + kTextFix);
    }
  }

  WordList out;
  out.path = path;
  out.words.reserve(lines.size());
  std::u32string decoded;
  for (const Line& line : lines) {
    std::size_t bad = 0;
    if (!from_utf8(std::string(line.text), &decoded, &bad)) {
      throw Error(path + ":" + std::to_string(line.number) + ": invalid UTF-8 byte " +
                  hex_byte(static_cast<unsigned char>(line.text[bad])) + " at column " + std::to_string(bad + 1) + "; " +
                  kTextFix);
    }
    std::u32string word = strip(decoded);
    if (word.empty()) {
      ++out.empty_lines;
    } else {
      out.words.push_back(std::move(word));
    }
  }
  if (out.words.empty()) throw Error(path + ": no items (only empty lines); it must hold one item per line");
  return out;
}

Vocab Vocab::from_words(const std::vector<std::u32string>& words) {
  std::u32string all;
  for (const auto& w : words) all += w;
  std::sort(all.begin(), all.end());
  all.erase(std::unique(all.begin(), all.end()), all.end());
  Vocab v;
  v.chars_ = std::move(all);
  return v;
}

Vocab Vocab::from_chars(const std::u32string& chars) {
  // encode() binary-searches, and a reordered list would silently remap a checkpoint's tokens.
  for (std::size_t i = 1; i < chars.size(); ++i) {
    if (!(chars[i - 1] < chars[i])) {
      throw Error("vocabulary characters must be distinct and in ascending order (" + code_point_name(chars[i]) + " at index " +
                  std::to_string(i + 1) + "); the stored vocabulary is damaged");
    }
  }
  Vocab v;
  v.chars_ = chars;
  return v;
}

int Vocab::encode(char32_t c) const {
  const auto it = std::lower_bound(chars_.begin(), chars_.end(), c);
  if (it == chars_.end() || *it != c) return -1;
  return static_cast<int>(it - chars_.begin()) + 1;
}

char32_t Vocab::decode(int index) const {
  if (index == 0) return U'.';
  if (index < 0 || index > static_cast<int>(chars_.size()))
    throw std::out_of_range("Vocab::decode: index " + std::to_string(index) + " out of range");
  return chars_[static_cast<std::size_t>(index - 1)];
}

std::string Vocab::token_utf8(int index) const { return to_utf8(decode(index)); }

Examples build_examples(const std::vector<std::u32string>& words, const Vocab& vocab, int block_size) {
  if (block_size < 1) throw Error("block_size must be at least 1 (got " + std::to_string(block_size) + ")");
  Examples ex;
  ex.block_size = block_size;
  std::size_t total = 0;
  for (const auto& w : words) total += w.size() + 1;
  ex.x.reserve(total * static_cast<std::size_t>(block_size));
  ex.y.reserve(total);

  std::vector<int32_t> context(static_cast<std::size_t>(block_size));
  for (const auto& w : words) {
    std::fill(context.begin(), context.end(), 0);
    for (std::size_t i = 0; i <= w.size(); ++i) {
      int32_t ix = 0;  // the closing boundary after the last character
      if (i < w.size()) {
        ix = vocab.encode(w[i]);
        if (ix < 0) {
          throw Error("word \"" + to_utf8(w) + "\" has the character '" + to_utf8(w[i]) + "' (" + code_point_name(w[i]) +
                      ") that is not in the vocabulary; the model only knows the characters "
                      "of its training words");
        }
      }
      ex.x.insert(ex.x.end(), context.begin(), context.end());
      ex.y.push_back(ix);
      std::rotate(context.begin(), context.begin() + 1, context.end());
      context.back() = ix;
    }
  }
  return ex;
}

Splits make_splits(const std::vector<std::u32string>& words, const Vocab& vocab, int block_size, uint64_t split_seed) {
  std::vector<std::u32string> shuffled = words;
  PyRandom rng(split_seed);
  rng.shuffle(shuffled);
  // Python's int(0.8 * n): the double product truncated, so the sizes match the notebook.
  const double n = static_cast<double>(shuffled.size());
  const auto n1 = static_cast<std::ptrdiff_t>(0.8 * n);
  const auto n2 = static_cast<std::ptrdiff_t>(0.9 * n);
  Splits s;
  s.train_words.assign(shuffled.begin(), shuffled.begin() + n1);
  s.val_words.assign(shuffled.begin() + n1, shuffled.begin() + n2);
  s.test_words.assign(shuffled.begin() + n2, shuffled.end());
  s.train = build_examples(s.train_words, vocab, block_size);
  s.val = build_examples(s.val_words, vocab, block_size);
  s.test = build_examples(s.test_words, vocab, block_size);
  return s;
}

DistinctContexts distinct_contexts(const Examples& ex) { return distinct_contexts(std::vector<const Examples*>{&ex}); }

namespace {

// The distinct contexts seen so far (their rows one after another, in order of first
// appearance) and an open-addressing table over them, kept at most half full: grown with the
// contexts, so a few thousand of them stay in a table the cache holds.
class ContextTable {
 public:
  explicit ContextTable(std::size_t T) : T_(T), slot_(1024, -1) {}
  std::vector<int32_t>& rows() { return rows_; }

  // The id of the context in row[0..T), numbered from 0 as first seen.
  int32_t id_of(const int32_t* row) {
    std::size_t s = hash(row) & (slot_.size() - 1);
    for (; slot_[s] >= 0; s = (s + 1) & (slot_.size() - 1))
      if (same(row, rows_.data() + static_cast<std::size_t>(slot_[s]) * T_)) return slot_[s];
    const auto k = static_cast<int32_t>(rows_.size() / T_);
    rows_.insert(rows_.end(), row, row + T_);
    if (2 * (static_cast<std::size_t>(k) + 1) <= slot_.size()) {
      slot_[s] = k;
    } else {
      slot_.assign(2 * slot_.size(), -1);
      for (int32_t j = 0; j <= k; ++j) place(j);
    }
    return k;
  }

 private:
  uint64_t hash(const int32_t* row) const {
    uint64_t h = 14695981039346656037ULL;
    for (std::size_t t = 0; t < T_; ++t) h = (h ^ static_cast<uint32_t>(row[t])) * 1099511628211ULL;
    return h ^ (h >> 29);
  }
  bool same(const int32_t* a, const int32_t* b) const {  // a loop, not std::equal's call to memcmp
    for (std::size_t t = 0; t < T_; ++t)
      if (a[t] != b[t]) return false;
    return true;
  }
  void place(int32_t k) {  // context k is new to the table
    std::size_t s = hash(rows_.data() + static_cast<std::size_t>(k) * T_) & (slot_.size() - 1);
    while (slot_[s] >= 0) s = (s + 1) & (slot_.size() - 1);
    slot_[s] = k;
  }

  std::size_t T_;
  std::vector<int32_t> rows_, slot_;
};

}  // namespace

DistinctContexts distinct_contexts(const std::vector<const Examples*>& sets) {
  DistinctContexts d;
  d.block_size = sets.empty() ? 0 : sets.front()->block_size;
  std::size_t n = 0;
  for (const Examples* ex : sets) {
    if (ex->block_size < 1 || ex->block_size != d.block_size ||
        ex->x.size() != ex->size() * static_cast<std::size_t>(ex->block_size))
      throw std::invalid_argument("distinct_contexts: examples of block size " + std::to_string(ex->block_size) +
                                  " whose x does not hold one context per example, or sets of different block sizes");
    n += ex->size();
  }
  if (n == 0) return d;
  const auto T = static_cast<std::size_t>(d.block_size);
  ContextTable table(T);
  d.index.reserve(n);  // the sets' examples one after another
  for (const Examples* ex : sets)
    for (std::size_t e = 0; e < ex->size(); ++e) d.index.push_back(table.id_of(ex->x.data() + e * T));
  d.x = std::move(table.rows());
  return d;
}

std::string to_utf8(char32_t c) {
  // Unencodable values (surrogates, beyond U+10FFFF) never come from from_utf8; show them
  // as the replacement character rather than emit invalid bytes.
  if ((c >= 0xD800 && c <= 0xDFFF) || c > 0x10FFFF) c = 0xFFFD;
  std::string out;
  if (c < 0x80) {
    out += static_cast<char>(c);
  } else if (c < 0x800) {
    out += static_cast<char>(0xC0 | (c >> 6));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    out += static_cast<char>(0xE0 | (c >> 12));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (c >> 18));
    out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  }
  return out;
}

std::string to_utf8(const std::u32string& s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t c : s) out += to_utf8(c);
  return out;
}

bool from_utf8(const std::string& s, std::u32string* out, std::size_t* bad_offset) {
  std::u32string result;
  result.reserve(s.size());
  const std::size_t n = s.size();
  auto byte = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
  auto fail = [&](std::size_t i) {
    if (bad_offset) *bad_offset = i;
    return false;
  };
  for (std::size_t i = 0; i < n;) {
    const unsigned char b0 = byte(i);
    if (b0 < 0x80) {
      result += static_cast<char32_t>(b0);
      ++i;
      continue;
    }
    // The lead byte fixes the length and the allowed range of the second byte; narrowing that
    // range (as the Unicode table does) is what rules out overlongs, surrogates and > U+10FFFF.
    std::size_t len = 0;
    unsigned char lo = 0x80, hi = 0xBF;
    char32_t cp = 0;
    if (b0 >= 0xC2 && b0 <= 0xDF) {
      len = 2;
      cp = b0 & 0x1F;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
      len = 3;
      cp = b0 & 0x0F;
      if (b0 == 0xE0) lo = 0xA0;  // overlong
      if (b0 == 0xED) hi = 0x9F;  // surrogates
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
      len = 4;
      cp = b0 & 0x07;
      if (b0 == 0xF0) lo = 0x90;  // overlong
      if (b0 == 0xF4) hi = 0x8F;  // beyond U+10FFFF
    } else {
      return fail(i);  // stray continuation, C0/C1 (overlong), F5..FF
    }
    if (i + len > n) return fail(i);  // truncated at the end
    for (std::size_t k = 1; k < len; ++k) {
      const unsigned char b = byte(i + k);
      const unsigned char klo = k == 1 ? lo : 0x80, khi = k == 1 ? hi : 0xBF;
      if (b < klo || b > khi) return fail(i);
      cp = (cp << 6) | (b & 0x3F);
    }
    result += cp;
    i += len;
  }
  if (out) *out = std::move(result);
  return true;
}

void require_nonempty_splits(const Splits& splits, const std::string& input, std::size_t items) {
  const char* empty = splits.train.size() == 0  ? "train"
                      : splits.val.size() == 0  ? "val"
                      : splits.test.size() == 0 ? "test"
                                                : nullptr;
  if (empty)
    throw Error(fmt::format("{}: too few items ({}): the 80/10/10 split leaves the {} split empty; use at least 10", input, items,
                            empty));
}

std::string words_fingerprint(const std::vector<std::u32string>& words) {
  uint64_t h = 14695981039346656037ULL;
  for (const auto& w : words) {
    for (char32_t ch : w) h = (h ^ static_cast<uint64_t>(ch)) * 1099511628211ULL;
    h = (h ^ 0x0aULL) * 1099511628211ULL;
  }
  return fmt::format("{:016x}", h);
}

Dataset Dataset::from_words(std::vector<std::u32string> words, std::string source, const Vocab* fixed_vocab) {
  Dataset d;
  d.source_ = std::move(source);
  d.words_ = std::move(words);
  d.vocab_ = fixed_vocab ? *fixed_vocab : Vocab::from_words(d.words_);
  d.fingerprint_ = words_fingerprint(d.words_);
  return d;
}

Dataset Dataset::load(const std::string& path, const Vocab* fixed_vocab) {
  WordList wl = load_words(path);
  Dataset d = from_words(std::move(wl.words), path, fixed_vocab);
  d.empty_lines_ = wl.empty_lines;
  return d;
}

Splits Dataset::split(int block_size, uint64_t split_seed) const { return make_splits(words_, vocab_, block_size, split_seed); }

Splits Dataset::split_nonempty(int block_size, uint64_t split_seed) const {
  Splits s = split(block_size, split_seed);
  require_nonempty_splits(s, source_, words_.size());
  return s;
}

std::string Dataset::empty_lines_note() const {
  return empty_lines_ ? fmt::format("{}: skipped {} empty line(s)", source_, empty_lines_) : std::string();
}

}  // namespace mm
