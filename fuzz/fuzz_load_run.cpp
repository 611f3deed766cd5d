// libFuzzer harness: the whole path that opens someone else's run folder. An input is a
// checkpoint and a train state (a 4-byte little-endian length, then the checkpoint's bytes,
// then the state's); they are written into a run folder beside a fixed words.txt, then opened
// as `eval`, `sample` and `train --resume` open them: load_run, the split losses, a few
// samples, and load_train_state into the loaded model. Every input must end in results or an
// mm::Error.
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "makemore/error.h"
#include "makemore/optim.h"
#include "makemore/rng.h"
#include "makemore/run.h"
#include "makemore/train.h"

namespace {

std::string folder() {
  static const std::string dir = [] {
    const std::string d = "/tmp/mm_fuzz_load_run." + std::to_string(::getpid());
    std::filesystem::create_directories(d);
    std::ofstream(d + "/" + mm::kWordsFile) << "anna\nbob\ncarla\ndmitri\neve\nfatima\ngus\nhiro\nines\njon\n";
    return d;
  }();
  return dir;
}

void put(const std::string& path, const uint8_t* data, std::size_t size) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  if (size < 4) return 0;
  uint32_t first = 0;
  std::memcpy(&first, data, 4);
  const std::size_t n1 = std::min<std::size_t>(first, size - 4);
  const std::string dir = folder();
  put(dir + "/" + mm::kCheckpointFile, data + 4, n1);
  put(dir + "/" + mm::kTrainStateFile, data + 4 + n1, size - 4 - n1);
  try {
    mm::Run run = mm::Run::open(dir);
    mm::SampleOptions so;
    so.count = 2;
    so.max_length = 8;
    (void)run.sample(so);
    (void)run.evaluate();
    mm::Optimizer opt(run.config().optimizer, run.model().params().values().size());
    mm::TorchGenerator gen;
    (void)mm::load_train_state(dir + "/" + mm::kTrainStateFile, opt, gen, run.model());
  } catch (const mm::Error&) {
  }
  return 0;
}
