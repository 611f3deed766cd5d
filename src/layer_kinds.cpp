// The registry's shared part: lookups, listings, and the walks over a list of specs (writing them
// back, following their shapes). The entries themselves are beside each layer's code in
// layers.cpp; reading options is config.cpp's (LayerOptionReader).
#include "makemore/layer_kinds.h"

#include <fmt/format.h>

#include "makemore/error.h"

namespace mm {

const char* role_name(LayerRole role) {
  switch (role) {
    case LayerRole::Matmul:
      return "matmul";
    case LayerRole::Normalization:
      return "normalization";
    case LayerRole::Activation:
      return "activation";
    case LayerRole::Gather:
      return "gather";
    case LayerRole::Block:
      return "block";
    case LayerRole::Regularization:
      return "regularization";
  }
  return "other";
}

const LayerKind* find_layer_kind(std::string_view name) {
  for (const LayerKind* k : layer_kinds())
    if (name == k->name) return k;
  return nullptr;
}

const LayerKind* find_layer_kind_by_class(std::string_view class_name) {
  for (const LayerKind* k : layer_kinds())
    if (class_name == k->class_name) return k;
  return nullptr;
}

std::string layer_kind_names() {
  const auto& kinds = layer_kinds();
  std::string s;
  for (std::size_t i = 0; i < kinds.size(); ++i)
    s += (i == 0 ? "" : i + 1 == kinds.size() ? " or " : ", ") + std::string(kinds[i]->name);
  return s;
}

nlohmann::json layer_spec_json(const LayerSpec& s) {
  nlohmann::json j{{"type", s.kind->name}};
  if (s.kind->write) s.kind->write(s, j);
  return j;
}

void ShapeCheck::fail(const char* key, const std::string& what) const {
  throw Error(fmt::format("{}: {}{}{}: {}", source ? *source : std::string("config"), where, *key ? "." : "", key, what));
}

void check_layer_shapes(const std::vector<LayerSpec>& specs, const std::string& where, const std::string& source, int& time,
                        int& features) {
  for (std::size_t i = 0; i < specs.size(); ++i) {
    if (!specs[i].kind->shape) continue;
    ShapeCheck c{time, features, fmt::format("{}[{}]", where, i), &source};
    specs[i].kind->shape(specs[i], c);
    time = c.time;
    features = c.features;
  }
}

}  // namespace mm
