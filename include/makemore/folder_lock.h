// One writer per folder: a run folder, a study's store. The lock is a flock on DIR/.lock, which
// the kernel releases when its holder ends however it ends (a kill -9 included), so a killed
// writer never leaves a stale lock behind; the holder's pid is written into the file for the
// message a second writer gets.
#pragma once
#include <string>
#include <utility>

namespace mm {

inline constexpr const char* kLockFile = ".lock";  // flock'd by the process writing the folder

class FolderLock {
 public:
  FolderLock() = default;
  FolderLock(FolderLock&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  FolderLock& operator=(FolderLock&& o) noexcept {
    std::swap(fd_, o.fd_);
    return *this;
  }
  ~FolderLock();
  FolderLock(const FolderLock&) = delete;
  FolderLock& operator=(const FolderLock&) = delete;

  // Locks the existing folder `dir`, or throws an mm::Error: another process holds it ("DIR:
  // another makemore process (pid N) is writing this <what>; wait for it to end, or pick
  // another -o DIR"), DIR/.lock is a symbolic link, or the folder is not writable. `what` names
  // the folder in those messages ("run folder", "study store").
  // shared: a lock many processes hold at once (the shards of a job array writing one study
  // store, each its own files), refused while an exclusive holder writes, and refusing one.
  static FolderLock acquire(const std::string& dir, const std::string& what, bool shared = false);

 private:
  int fd_ = -1;
};

}  // namespace mm
