// ParamStore: declaration, then one allocation for values, gradients and buffers.
#include "makemore/params.h"

#include <stdexcept>

namespace mm {

int ParamStore::add(ParamInfo info) {
  if (finalized_) throw std::logic_error("ParamStore::add after finalize");
  if (find(info.name) >= 0) throw std::logic_error("duplicate parameter " + info.name);
  infos_.push_back(std::move(info));
  return static_cast<int>(infos_.size()) - 1;
}

std::pair<std::size_t, std::size_t> ParamStore::lay_out() {
  std::size_t nv = 0, nb = 0;
  num_trainable_ = 0;
  const auto pad = [](std::size_t n) { return (n + kAlignFloats - 1) / kAlignFloats * kAlignFloats; };
  for (auto& p : infos_) {
    if (p.trainable) {
      p.offset = nv;
      nv += pad(p.size());
      num_trainable_ += p.size();
    } else {
      p.offset = nb;
      nb += pad(p.size());
    }
  }
  return {nv, nb};
}

void ParamStore::finalize() {
  const auto [nv, nb] = lay_out();
  values_.assign(nv, 0.0f);
  grads_.assign(nv, 0.0f);
  buffers_.assign(nb, 0.0f);
  finalized_ = true;
}

int ParamStore::find(const std::string& name) const {
  for (std::size_t i = 0; i < infos_.size(); ++i)
    if (infos_[i].name == name) return static_cast<int>(i);
  return -1;
}

float* ParamStore::data(int id) {
  const auto& p = info(id);
  return (p.trainable ? values_.data() : buffers_.data()) + p.offset;
}
const float* ParamStore::data(int id) const {
  const auto& p = info(id);
  return (p.trainable ? values_.data() : buffers_.data()) + p.offset;
}
float* ParamStore::grad(int id) {
  const auto& p = info(id);
  if (!p.trainable) throw std::logic_error("no gradient for buffer " + p.name);
  return grads_.data() + p.offset;
}
const float* ParamStore::grad(int id) const {
  const auto& p = info(id);
  if (!p.trainable) throw std::logic_error("no gradient for buffer " + p.name);
  return grads_.data() + p.offset;
}

}  // namespace mm
