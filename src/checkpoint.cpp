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

namespace mm {

// The data section is raw host floats; safetensors mandates little-endian.
static_assert(std::endian::native == std::endian::little, "checkpoint I/O assumes a little-endian host");
static_assert(sizeof(float) == 4);

namespace {

// Bigger headers are never written by us and would only make a corrupt length allocate a lot.
constexpr uint64_t max_header_bytes = 100ull * 1024 * 1024;
constexpr const char* metadata_key = "__metadata__";
// Our own metadata entry: FNV-1a (64-bit) of the whole data section, so bytes damaged after the
// save (a bad disk, a copy cut short and padded, an edit) are found on load instead of being
// read as weights. Files without it (other writers, older versions) load unchecked.
constexpr const char* checksum_key = "makemore.data_fnv1a64";

struct DataHash {
  uint64_t h = 14695981039346656037ULL;
  void add(const std::vector<float>& v) {
    const auto* p = reinterpret_cast<const unsigned char*>(v.data());
    for (std::size_t i = 0, n = v.size() * sizeof(float); i < n; ++i) h = (h ^ p[i]) * 1099511628211ULL;
  }
  std::string hex() const {
    static const char digits[] = "0123456789abcdef";
    std::string s(16, '0');
    for (int i = 0; i < 16; ++i) s[static_cast<std::size_t>(i)] = digits[(h >> (60 - 4 * i)) & 0xF];
    return s;
  }
};

[[noreturn]] void throw_corrupt(const std::string& path, const std::string& what) {
  throw Error(path + ": corrupt checkpoint (" + what + "); retrain or restore the file");
}

std::string errno_text(int err) { return std::strerror(err); }

// Names echoed from a corrupt header may hold newlines or be huge; keep the message one short line.
std::string printable(const std::string& s) {
  size_t cut = std::min<size_t>(s.size(), 64);
  while (cut < s.size() && cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xc0) == 0x80) --cut;  // UTF-8 boundary
  std::string out;
  for (char c : s.substr(0, cut)) out += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? '?' : c;
  if (cut < s.size()) out += "...";
  return out;
}

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
  for (const auto& [k, v] : file.metadata) meta[k] = v;
  DataHash hash;
  for (const auto& t : file.tensors) hash.add(t.data);
  meta[checksum_key] = hash.hex();
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

TensorFile load_safetensors(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) throw NotFound(path + ": no such checkpoint; train first with `makemore train -o DIR`");
    throw Error(path + ": cannot open checkpoint (" + errno_text(errno) + "); check permissions");
  }
  struct FdCloser {
    int fd;
    ~FdCloser() { ::close(fd); }
  } closer{fd};

  struct stat st {};
  if (::fstat(fd, &st) != 0) throw Error(path + ": cannot read checkpoint (" + errno_text(errno) + ")");
  if (!S_ISREG(st.st_mode)) throw Error(path + ": is not a regular file; pass the checkpoint file, not a directory");
  const uint64_t file_size = static_cast<uint64_t>(st.st_size);
  if (file_size < 8)
    throw_corrupt(path, "file is " + std::to_string(file_size) + " bytes, shorter than the 8-byte header length");

  char len_bytes[8];
  if (!read_all(fd, len_bytes, 8, path)) throw_corrupt(path, "file ended early");
  uint64_t header_len = 0;
  std::memcpy(&header_len, len_bytes, 8);
  if (header_len > max_header_bytes)
    throw_corrupt(path, "header length " + std::to_string(header_len) + " exceeds the 100 MB limit");
  if (header_len > file_size - 8)
    throw_corrupt(path, "header length " + std::to_string(header_len) + " exceeds the file size " + std::to_string(file_size));
  std::string header_text(header_len, '\0');
  if (!read_all(fd, header_text.data(), header_text.size(), path)) throw_corrupt(path, "file ended early");
  const uint64_t data_size = file_size - 8 - header_len;

  // Duplicate top-level keys would silently drop a tensor, so the parser callback flags them.
  std::set<std::string> keys;
  bool duplicate = false;
  nlohmann::ordered_json header;
  try {
    header = nlohmann::ordered_json::parse(
        header_text, [&](int depth, nlohmann::ordered_json::parse_event_t event, nlohmann::ordered_json& parsed) {
          if (depth == 1 && event == nlohmann::ordered_json::parse_event_t::key && parsed.is_string() &&
              !keys.insert(parsed.get<std::string>()).second)
            duplicate = true;
          return true;
        });
  } catch (const nlohmann::json::parse_error& e) {
    throw_corrupt(path, "header is not valid JSON near byte " + std::to_string(e.byte));
  }
  if (!header.is_object()) throw_corrupt(path, "header is not a JSON object");
  if (duplicate) throw_corrupt(path, "header names a tensor twice");

  TensorFile result;
  std::vector<ParsedEntry> entries;
  for (const auto& [key, value] : header.items()) {
    if (key == metadata_key) {
      if (value.is_null()) continue;  // the reference implementation writes null for "no metadata"
      if (!value.is_object()) throw_corrupt(path, "__metadata__ is not a JSON object");
      for (const auto& [mk, mv] : value.items()) {
        if (!mv.is_string()) throw_corrupt(path, "metadata value for \"" + printable(mk) + "\" is not a string");
        result.metadata[mk] = mv.get<std::string>();
      }
      continue;
    }
    entries.push_back(parse_entry(path, key, value, data_size));
  }

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

  // Every byte count below was checked against the real file size, so these allocations are
  // bounded.
  result.tensors.reserve(entries.size());
  for (auto& e : entries) {
    NamedTensor t;
    t.name = std::move(e.name);
    t.shape = std::move(e.shape);
    t.data.resize((e.end - e.begin) / 4);
    if (!read_all(fd, reinterpret_cast<char*>(t.data.data()), e.end - e.begin, path)) throw_corrupt(path, "file ended early");
    result.tensors.push_back(std::move(t));
  }
  if (auto it = result.metadata.find(checksum_key); it != result.metadata.end()) {
    DataHash hash;
    for (const auto& t : result.tensors) hash.add(t.data);  // data order: the section's bytes
    if (hash.hex() != it->second)
      throw_corrupt(path, "its values do not match the checksum written with them: the file was damaged after it was saved");
    result.metadata.erase(it);
  }
  return result;
}

}  // namespace mm
