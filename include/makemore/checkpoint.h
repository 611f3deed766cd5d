// Checkpoints in the safetensors format (loadable from Python): named float32 tensors plus a
// string-to-string metadata map. Saves go to a temporary file that is renamed into place, so an
// interrupted save never leaves a broken checkpoint; a truncated or corrupt file is an mm::Error.
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace mm {

struct NamedTensor {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<float> data;  // row-major, product(shape) values
};

struct TensorFile {
  std::vector<NamedTensor> tensors;  // in file order
  std::map<std::string, std::string> metadata;
  // What the loaded file's checksum covered: Full (this program's files: metadata, names,
  // shapes and values), Data (older makemore.cpp files: the values only), None (other writers).
  // Readers of our own files refuse None: a damaged checksum key must not switch the check off.
  enum class Integrity { None, Data, Full } integrity = Integrity::None;
  const NamedTensor* find(const std::string& name) const;
};

void save_safetensors(const std::string& path, const TensorFile& file);
TensorFile load_safetensors(const std::string& path);
// A file this program wrote (a run folder's checkpoint or train state): as load_safetensors,
// and a file without a checksum is refused.
TensorFile load_own_safetensors(const std::string& path);
// A count stored as metadata text: decimal digits only (no sign, no 0x, nothing after), at
// most `hi`; nullopt otherwise.
std::optional<int64_t> metadata_count(const std::string& text, int64_t hi);

}  // namespace mm
