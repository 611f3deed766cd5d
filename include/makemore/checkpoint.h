// Checkpoints in the safetensors format (loadable from Python): named float32 tensors plus a
// string-to-string metadata map. Saves go to a temporary file that is renamed into place, so an
// interrupted save never leaves a broken checkpoint; a truncated or corrupt file is an mm::Error.
#pragma once
#include <cstdint>
#include <map>
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
  const NamedTensor* find(const std::string& name) const;
};

void save_safetensors(const std::string& path, const TensorFile& file);
TensorFile load_safetensors(const std::string& path);

}  // namespace mm
