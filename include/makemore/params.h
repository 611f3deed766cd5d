// All trainable parameters live in one contiguous buffer with a twin gradient buffer, and the
// non-trainable buffers (BatchNorm running statistics) in a third; layers hold named views.
// The optimizer walks one array, a checkpoint is one pass, and update:data ratios come free.
#pragma once
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "makemore/init.h"
#include "makemore/tensor.h"

namespace mm {

struct ParamInfo {
  std::string name;  // "layers.3.weight"
  int rows = 0;      // a 1-D parameter has rows == 1
  int cols = 0;
  bool is_1d = false;     // shape reported as (cols) rather than (rows, cols)
  bool trainable = true;  // false: a buffer (running_mean ...), not touched by the optimizer
  int fan_in = 0;         // for Kaiming / nn.Linear default initialisation
  InitSpec init;
  std::size_t offset = 0;  // into values() (trainable) or buffers()
  std::size_t size() const { return static_cast<std::size_t>(rows) * static_cast<std::size_t>(cols); }
};

class ParamStore {
 public:
  // Declares a parameter; returns its id. Only valid before finalize().
  int add(ParamInfo info);
  // Allocates the buffers; after this, data pointers are stable.
  void finalize();
  // Sets every parameter's offset and returns the sizes values() and buffers() will have,
  // allocating nothing (finalize() does this first).
  std::pair<std::size_t, std::size_t> lay_out();
  bool finalized() const { return finalized_; }

  const std::vector<ParamInfo>& infos() const { return infos_; }
  const ParamInfo& info(int id) const { return infos_[static_cast<std::size_t>(id)]; }
  int find(const std::string& name) const;  // -1 when absent

  float* data(int id);
  float* grad(int id);  // trainable only
  const float* data(int id) const;
  const float* grad(int id) const;
  MatMap value(int id) {
    const auto& p = info(id);
    return {data(id), p.rows, p.cols};
  }
  MatMap gradient(int id) {
    const auto& p = info(id);
    return {grad(id), p.rows, p.cols};
  }

  FloatBuf& values() { return values_; }  // all trainable parameters
  FloatBuf& grads() { return grads_; }
  FloatBuf& buffers() { return buffers_; }
  const FloatBuf& values() const { return values_; }
  const FloatBuf& grads() const { return grads_; }
  const FloatBuf& buffers() const { return buffers_; }
  // Count of trainable numbers; values() is longer: each parameter starts on a 64-byte boundary
  // and the padding between them stays zero (zero gradient, never updated).
  std::size_t num_trainable() const { return num_trainable_; }

 private:
  std::vector<ParamInfo> infos_;
  FloatBuf values_, grads_, buffers_;
  std::size_t num_trainable_ = 0;
  bool finalized_ = false;
};

}  // namespace mm
