// Checkpoints in the safetensors format: an 8-byte little-endian header length N, N bytes of JSON
// header (space-padded to a multiple of 8), then the raw little-endian float32 data of every
// tensor, laid out contiguously in file order. Saving is atomic (temp file + fsync + rename);
// loading validates every field against the real file size before allocating, so a truncated or
// corrupt file becomes a one-line mm::Error rather than a crash or a huge allocation.
#include "makemore/checkpoint.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "makemore/atomic_file.h"
#include "makemore/error.h"
#include "makemore/json_text.h"

namespace mm {

// The data section is raw host floats; safetensors mandates little-endian.
static_assert(std::endian::native == std::endian::little, "checkpoint I/O assumes a little-endian host");
static_assert(sizeof(float) == 4);

namespace {

// Bigger headers are never written by us and would only make a corrupt length allocate a lot.
constexpr uint64_t max_header_bytes = 100ull * 1024 * 1024;
constexpr const char* metadata_key = "__metadata__";
// Our own metadata entry: FNV-1a (64-bit) of everything the file says (every other metadata
// key and value, every tensor's name, shape and values), so bytes damaged after the save (a
// bad disk, a copy cut short and padded, an edit) are found on load instead of being read as
// weights, a step, a vocabulary or a generator state. A damaged key name cannot switch it off:
// readers of our own files (load_run, the train state) require it (TensorFile::integrity).
constexpr const char* checksum_key = "makemore.fnv1a64";
// Files written before the header was covered: the data section's hash alone.
constexpr const char* legacy_checksum_key = "makemore.data_fnv1a64";

struct DataHash {
  uint64_t h = 14695981039346656037ULL;
  void bytes(const void* data, std::size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (std::size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ULL;
  }
  void add(const std::vector<float>& v) { bytes(v.data(), v.size() * sizeof(float)); }
  // Length first, so that ("ab", "c") and ("a", "bc") differ.
  void text(const std::string& s) {
    const uint64_t n = s.size();
    bytes(&n, sizeof n);
    bytes(s.data(), s.size());
  }
  std::string hex() const {
    static const char digits[] = "0123456789abcdef";
    std::string s(16, '0');
    for (int i = 0; i < 16; ++i) s[static_cast<std::size_t>(i)] = digits[(h >> (60 - 4 * i)) & 0xF];
    return s;
  }
};

// The checksum of a file's whole content, its own entry left out.
std::string content_hash(const std::map<std::string, std::string>& metadata, const std::vector<NamedTensor>& tensors) {
  DataHash hash;
  for (const auto& [k, v] : metadata) {
    if (k == checksum_key) continue;
    hash.text(k);
    hash.text(v);
  }
  for (const auto& t : tensors) {
    hash.text(t.name);
    const uint64_t dims = t.shape.size();
    hash.bytes(&dims, sizeof dims);
    hash.bytes(t.shape.data(), t.shape.size() * sizeof(int64_t));
    hash.add(t.data);
  }
  return hash.hex();
}

[[noreturn]] void throw_corrupt(const std::string& path, const std::string& what) {
  throw Error(path + ": corrupt checkpoint (" + what + "); retrain or restore the file");
}

std::string errno_text(int err) { return std::strerror(err); }

// Names echoed from a corrupt header may hold newlines or be huge; keep the message one short line.
std::string printable(const std::string& s) { return text_excerpt(s, 64); }

// Reads exactly `size` bytes; false when the file ends first (it shrank after fstat).
bool read_all(int fd, char* bytes, size_t size, const std::string& path) {
  while (size > 0) {
    const ssize_t n = ::read(fd, bytes, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw Error(path + ": cannot read checkpoint (" + errno_text(errno) + ")");
    }
    if (n == 0) return false;
    bytes += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

// Product of dims, or nullopt when any dim is negative or the product overflows int64.
std::optional<int64_t> element_count(const std::vector<int64_t>& shape) {
  int64_t count = 1;
  for (int64_t d : shape) {
    if (d < 0) return std::nullopt;
    if (d != 0 && count > std::numeric_limits<int64_t>::max() / d) return std::nullopt;
    count *= d;
  }
  return count;
}

struct ParsedEntry {
  std::string name;
  std::vector<int64_t> shape;
  uint64_t begin = 0;
  uint64_t end = 0;
};

// Reads a JSON value that must be a non-negative integer.
bool as_u64(const nlohmann::ordered_json& v, uint64_t& out) {
  if (v.is_number_unsigned()) {
    out = v.get<uint64_t>();
    return true;
  }
  if (v.is_number_integer() && v.get<int64_t>() >= 0) {
    out = static_cast<uint64_t>(v.get<int64_t>());
    return true;
  }
  return false;
}

ParsedEntry parse_entry(const std::string& path, const std::string& name, const nlohmann::ordered_json& v, uint64_t data_size) {
  const std::string where = "tensor \"" + printable(name) + "\"";
  if (!v.is_object()) throw_corrupt(path, where + " is not a JSON object");
  const auto dtype = v.find("dtype");
  const auto shape = v.find("shape");
  const auto offsets = v.find("data_offsets");
  if (dtype == v.end() || shape == v.end() || offsets == v.end())
    throw_corrupt(path, where + " lacks dtype, shape or data_offsets");
  if (!dtype->is_string()) throw_corrupt(path, where + " dtype is not a string");
  if (dtype->get<std::string>() != "F32")
    throw_corrupt(path, where + " has dtype " + printable(dtype->get<std::string>()) + ", only F32 is supported");

  ParsedEntry entry;
  entry.name = name;
  if (!shape->is_array()) throw_corrupt(path, where + " shape is not an array");
  for (const auto& d : *shape) {
    uint64_t dim = 0;
    if (!as_u64(d, dim) || dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      throw_corrupt(path, where + " shape has an entry that is not a non-negative integer");
    entry.shape.push_back(static_cast<int64_t>(dim));
  }
  if (!offsets->is_array() || offsets->size() != 2 || !as_u64((*offsets)[0], entry.begin) || !as_u64((*offsets)[1], entry.end))
    throw_corrupt(path, where + " data_offsets is not a pair of non-negative integers");
  if (entry.begin > entry.end || entry.end > data_size)
    throw_corrupt(path, where + " data_offsets [" + std::to_string(entry.begin) + ", " + std::to_string(entry.end) +
                            "] lie outside the " + std::to_string(data_size) + "-byte data section");
  // The byte range is already bounded by the file, so an overflowing shape cannot match it.
  const auto count = element_count(entry.shape);
  if (!count || static_cast<uint64_t>(*count) > data_size / 4 || static_cast<uint64_t>(*count) * 4 != entry.end - entry.begin)
    throw_corrupt(path, where + " shape does not match its data_offsets");
  return entry;
}

}  // namespace

const NamedTensor* TensorFile::find(const std::string& name) const {
  for (const auto& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

void save_safetensors(const std::string& path, const TensorFile& file) {
  // Build the header first so that bad input fails before any file is touched.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  nlohmann::ordered_json meta = nlohmann::ordered_json::object();
  for (const auto& [k, v] : file.metadata)
    if (k != legacy_checksum_key) meta[k] = v;
  std::map<std::string, std::string> hashed = file.metadata;
  hashed.erase(legacy_checksum_key);
  meta[checksum_key] = content_hash(hashed, file.tensors);
  header[metadata_key] = std::move(meta);
  std::set<std::string> seen;
  uint64_t offset = 0;
  for (const auto& t : file.tensors) {
    if (t.name == metadata_key || !seen.insert(t.name).second)
      throw Error(path + ": cannot save tensor named \"" + printable(t.name) +
                  "\" (duplicate or reserved name); give every tensor a unique name");
    const auto count = element_count(t.shape);
    if (!count || static_cast<uint64_t>(*count) != t.data.size())
      throw Error(path + ": cannot save tensor \"" + printable(t.name) + "\": shape does not match its " +
                  std::to_string(t.data.size()) + " values");
    const uint64_t bytes = t.data.size() * sizeof(float);
    header[t.name] = {{"dtype", "F32"}, {"shape", t.shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string header_text;
  try {
    header_text = header.dump();
  } catch (const nlohmann::json::exception&) {
    throw Error(path + ": cannot save checkpoint: a tensor name or metadata string is not valid UTF-8");
  }
  // Padding keeps the data section 8-byte aligned, as the safetensors reference writer does.
  header_text.append((8 - header_text.size() % 8) % 8, ' ');
  const uint64_t header_len = header_text.size();
  char len_bytes[8];
  std::memcpy(len_bytes, &header_len, 8);

  AtomicFile out(path);  // temp file beside it, fsync, rename: never half a checkpoint
  out.write(len_bytes, 8);
  out.write(header_text);
  for (const auto& t : file.tensors) out.write(t.data.data(), t.data.size() * sizeof(float));
  out.commit();
}

namespace {

// An open checkpoint: its descriptor (closed at the end) and size.
struct OpenFile {
  int fd = -1;
  uint64_t size = 0;
  OpenFile(const OpenFile&) = delete;
  OpenFile& operator=(const OpenFile&) = delete;
  explicit OpenFile(const std::string& path) {
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT) throw NotFound(path + ": no such checkpoint; train first with `makemore train -o DIR`");
      throw Error(path + ": cannot open checkpoint (" + errno_text(errno) + "); check permissions");
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      const int err = errno;
      ::close(fd);
      throw Error(path + ": cannot read checkpoint (" + errno_text(err) + ")");
    }
    if (!S_ISREG(st.st_mode)) {
      ::close(fd);
      throw Error(path + ": is not a regular file; pass the checkpoint file, not a directory");
    }
    size = static_cast<uint64_t>(st.st_size);
  }
  ~OpenFile() { ::close(fd); }
};

// The 8-byte length and the JSON header text it announces, checked against the file's size.
std::string read_header_text(const std::string& path, const OpenFile& f) {
  if (f.size < 8) throw_corrupt(path, "file is " + std::to_string(f.size) + " bytes, shorter than the 8-byte header length");
  char len_bytes[8];
  if (!read_all(f.fd, len_bytes, 8, path)) throw_corrupt(path, "file ended early");
  uint64_t header_len = 0;
  std::memcpy(&header_len, len_bytes, 8);
  if (header_len > max_header_bytes)
    throw_corrupt(path, "header length " + std::to_string(header_len) + " exceeds the 100 MB limit");
  if (header_len > f.size - 8)
    throw_corrupt(path, "header length " + std::to_string(header_len) + " exceeds the file size " + std::to_string(f.size));
  std::string text(header_len, '\0');
  if (!read_all(f.fd, text.data(), text.size(), path)) throw_corrupt(path, "file ended early");
  return text;
}

// The header as JSON: an object, no top-level key twice (a tensor would silently be dropped),
// nested no deeper than kMaxJsonDepth (a recursive walk of it must not overflow the stack).
nlohmann::ordered_json parse_header(const std::string& path, const std::string& text) {
  using J = nlohmann::ordered_json;
  std::set<std::string> keys;
  bool duplicate = false, deep = false;
  J header;
  try {
    header = J::parse(text, [&](int depth, J::parse_event_t event, J& parsed) {
      if ((event == J::parse_event_t::object_start || event == J::parse_event_t::array_start) && depth >= kMaxJsonDepth) {
        deep = true;
        throw std::length_error("nesting");
      }
      if (depth == 1 && event == J::parse_event_t::key && parsed.is_string() && !keys.insert(parsed.get<std::string>()).second)
        duplicate = true;
      return true;
    });
  } catch (const nlohmann::json::parse_error& e) {
    throw_corrupt(path, "header is not valid JSON near byte " + std::to_string(e.byte));
  } catch (const std::exception&) {
    throw_corrupt(path,
                  deep ? "header nests deeper than " + std::to_string(kMaxJsonDepth) + " levels" : "header is not valid JSON");
  }
  if (!header.is_object()) throw_corrupt(path, "header is not a JSON object");
  if (duplicate) throw_corrupt(path, "header names a tensor twice");
  return header;
}

// The tensors' byte ranges must tile the data section exactly, in file order.
void check_layout(const std::string& path, std::vector<ParsedEntry>& entries, uint64_t data_size) {
  // File order is data order; stable sort keeps header order for empty tensors sharing an offset.
  std::stable_sort(entries.begin(), entries.end(), [](const ParsedEntry& a, const ParsedEntry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t expected = 0;
  for (const auto& e : entries) {
    if (e.begin < expected) throw_corrupt(path, "tensor \"" + printable(e.name) + "\" overlaps the previous tensor");
    if (e.begin > expected) throw_corrupt(path, "gap in the data section before tensor \"" + printable(e.name) + "\"");
    expected = e.end;
  }
  if (expected != data_size)
    throw_corrupt(path, "data section is " + std::to_string(data_size) + " bytes but the tensors use " +
                            std::to_string(expected) + "; the file is truncated or has trailing bytes");
}

// Metadata (strings only) and the tensors' entries, their ranges checked against the file.
void read_header(const std::string& path, const nlohmann::ordered_json& header, uint64_t data_size, TensorFile& result,
                 std::vector<ParsedEntry>& entries) {
  for (const auto& [key, value] : header.items()) {
    if (key != metadata_key) {
      entries.push_back(parse_entry(path, key, value, data_size));
      continue;
    }
    if (value.is_null()) continue;  // the reference implementation writes null for "no metadata"
    if (!value.is_object()) throw_corrupt(path, "__metadata__ is not a JSON object");
    for (const auto& [mk, mv] : value.items()) {
      if (!mv.is_string()) throw_corrupt(path, "metadata value for \"" + printable(mk) + "\" is not a string");
      result.metadata[mk] = mv.get<std::string>();
    }
  }
  check_layout(path, entries, data_size);
}

// Checks whichever checksum the file carries and records which in `integrity`.
void verify(const std::string& path, TensorFile& f) {
  const auto damaged = [&] {
    throw_corrupt(path, "its contents do not match the checksum written with them: the file was damaged after it was saved");
  };
  if (auto it = f.metadata.find(checksum_key); it != f.metadata.end()) {
    if (content_hash(f.metadata, f.tensors) != it->second) damaged();
    f.metadata.erase(it);
    f.integrity = TensorFile::Integrity::Full;
  } else if (auto old = f.metadata.find(legacy_checksum_key); old != f.metadata.end()) {
    DataHash hash;
    for (const auto& t : f.tensors) hash.add(t.data);  // data order: the section's bytes
    if (hash.hex() != old->second) damaged();
    f.metadata.erase(old);
    f.integrity = TensorFile::Integrity::Data;
  }
}

}  // namespace

TensorFile load_safetensors(const std::string& path) {
  const OpenFile file(path);
  const std::string header_text = read_header_text(path, file);
  const uint64_t data_size = file.size - 8 - header_text.size();
  TensorFile result;
  std::vector<ParsedEntry> entries;
  read_header(path, parse_header(path, header_text), data_size, result, entries);
  // Every byte count was checked against the real file size, so these allocations are bounded.
  result.tensors.reserve(entries.size());
  for (auto& e : entries) {
    NamedTensor t;
    t.name = std::move(e.name);
    t.shape = std::move(e.shape);
    t.data.resize((e.end - e.begin) / 4);
    if (!read_all(file.fd, reinterpret_cast<char*>(t.data.data()), e.end - e.begin, path))
      throw_corrupt(path, "file ended early");
    result.tensors.push_back(std::move(t));
  }
  verify(path, result);
  return result;
}

TensorFile load_own_safetensors(const std::string& path) {
  TensorFile f = load_safetensors(path);
  if (f.integrity == TensorFile::Integrity::None)
    throw_corrupt(path, std::string("no checksum: the metadata field '") + checksum_key +
                            "' is missing: its name was damaged, or the file predates checksums");
  return f;
}

std::optional<int64_t> metadata_count(const std::string& text, int64_t hi) {
  if (text.empty() || text.size() > 18 || !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return std::nullopt;
  const int64_t v = std::stoll(text);
  if (v > hi) return std::nullopt;
  return v;
}

}  // namespace mm
