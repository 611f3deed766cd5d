// libFuzzer harness: the word-list reader on any bytes, then the vocabulary and the lecture's
// splits of what it read. Every input must end in a dataset or an mm::Error.
#include "fuzz_util.h"
#include "makemore/data.h"
#include "makemore/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  static mm_fuzz::MemFile file("words");
  const std::string path = file.put(data, size);
  try {
    const mm::Dataset d = mm::Dataset::load(path);
    const mm::Splits s = d.split(3, 42);
    (void)s;
    (void)d.fingerprint();
  } catch (const mm::Error&) {
  }
  return 0;
}
