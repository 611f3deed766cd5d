// libFuzzer harness: the safetensors loader on any bytes. Every input must end in a loaded
// file or an mm::Error (never a crash, a sanitizer report or an allocation beyond the file).
#include "fuzz_util.h"
#include "makemore/checkpoint.h"
#include "makemore/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  static mm_fuzz::MemFile file("safetensors");
  const std::string path = file.put(data, size);
  try {
    const mm::TensorFile f = mm::load_safetensors(path);
    for (const auto& t : f.tensors) (void)f.find(t.name);
  } catch (const mm::Error&) {
  }
  return 0;
}
