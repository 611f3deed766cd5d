// Which kernel set (kernels/kernels.h) this process uses: the best one of this build that the
// CPU runs, or the one MAKEMORE_KERNELS names; set_kernel_set() changes it (tests run every set).
#include <fmt/format.h>

#include <atomic>
#include <cstdlib>
#include <string>
#include <vector>

#include "kernels/kernels.h"
#include "makemore/error.h"
#include "makemore/layers.h"
#include "makemore/perf.h"

namespace mm::kernels {

#if defined(MM_KERNELS_NATIVE)
namespace native {
const Table& table();
}
#endif
#if defined(MM_KERNELS_AVX512)
namespace avx512 {
const Table& table();
}
#endif
#if defined(MM_KERNELS_AVX2)
namespace avx2 {
const Table& table();
}
#endif
#if defined(MM_KERNELS_GENERIC)
namespace generic {
const Table& table();
}
#endif

namespace {
// The sets this build holds that the CPU runs, best first.
std::vector<const Table*> runnable() {
  std::vector<const Table*> sets;
#if defined(MM_KERNELS_NATIVE)
  sets.push_back(&native::table());  // built for this machine
#endif
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
#if defined(MM_KERNELS_AVX512)
  if (__builtin_cpu_supports("x86-64-v4")) sets.push_back(&avx512::table());
#endif
#if defined(MM_KERNELS_AVX2)
  if (__builtin_cpu_supports("x86-64-v3")) sets.push_back(&avx2::table());
#endif
#endif
#if defined(MM_KERNELS_GENERIC)
  sets.push_back(&generic::table());
#endif
  return sets;
}

const std::vector<const Table*>& sets() {
  static const std::vector<const Table*> s = runnable();
  return s;
}

std::string names() {
  std::string out;
  for (const Table* t : sets()) out += (out.empty() ? "" : ", ") + std::string(t->name);
  return out;
}

const Table* find(const std::string& name) {
  for (const Table* t : sets())
    if (name == t->name) return t;
  return nullptr;
}

const Table* initial() {
  const char* env = std::getenv("MAKEMORE_KERNELS");
  if (env == nullptr || *env == '\0') return sets().front();
  if (const Table* t = find(env)) return t;
  throw Error(fmt::format("MAKEMORE_KERNELS={}: not a kernel set of this build that this CPU runs; use one of {} (or unset it)",
                          env, names()));
}

std::atomic<const Table*>& current() {
  static std::atomic<const Table*> t{initial()};
  return t;
}
}  // namespace

const Table& kernels() { return *current().load(std::memory_order_relaxed); }

}  // namespace mm::kernels

namespace mm {

std::string kernel_set() { return kernels::kernels().name; }

std::vector<std::string> kernel_sets() {
  std::vector<std::string> out;
  for (const kernels::Table* t : kernels::sets()) out.emplace_back(t->name);
  return out;
}

void set_kernel_set(const std::string& name) {
  const kernels::Table* t = kernels::find(name);
  if (!t)
    throw Error(
        fmt::format("kernel set \"{}\": not in this build or not run by this CPU; use one of {}", name, kernels::names()));
  kernels::current() = t;
  // The AVX-512 token kernels exist in some sets only; without them the products through x are
  // the default (token_linear.cpp).
  if (token_linear() == TokenLinear::Simd && !t->tokens_simd.pairs_forward) set_token_linear(TokenLinear::Off);
}

}  // namespace mm
