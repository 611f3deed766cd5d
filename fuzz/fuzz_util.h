// Shared by the fuzz harnesses: the loaders take paths, so each input is handed over as a
// file in memory (memfd) named by /proc/self/fd/N: no disk traffic per execution.
#pragma once
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

namespace mm_fuzz {

// One in-memory file, rewritten with each input.
class MemFile {
 public:
  explicit MemFile(const char* name) : fd_(memfd_create(name, 0)) {
    if (fd_ < 0) std::abort();
  }
  ~MemFile() { ::close(fd_); }
  // Replaces the file's content; returns a path the loaders can open.
  std::string put(const uint8_t* data, std::size_t size) {
    if (::ftruncate(fd_, 0) != 0) std::abort();
    std::size_t done = 0;
    while (done < size) {
      const ssize_t n = ::pwrite(fd_, data + done, size - done, static_cast<off_t>(done));
      if (n <= 0) std::abort();
      done += static_cast<std::size_t>(n);
    }
    return "/proc/self/fd/" + std::to_string(fd_);
  }

 private:
  int fd_;
};

}  // namespace mm_fuzz
