// The folder lock (folder_lock.h): flock(LOCK_EX | LOCK_NB) on DIR/.lock, the holder's pid in it.
#include "makemore/folder_lock.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "makemore/error.h"

namespace mm {

FolderLock::~FolderLock() {
  if (fd_ >= 0) ::close(fd_);
}

FolderLock FolderLock::acquire(const std::string& dir, const std::string& what, bool shared) {
  const std::string path = dir + "/" + kLockFile;
  FolderLock lock;
  lock.fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0666);
  if (lock.fd_ < 0)
    throw Error(errno == ELOOP
                    ? fmt::format("{}: is a symbolic link; remove it (the {}'s lock file must be its own)", path, what)
                    : fmt::format("{}: cannot lock the {} ({}); check that it is writable", path, what, std::strerror(errno)));
  if (::flock(lock.fd_, (shared ? LOCK_SH : LOCK_EX) | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK) throw Error(fmt::format("{}: cannot lock the {} ({})", path, what, std::strerror(errno)));
    char buf[32] = {};
    const ssize_t n = ::pread(lock.fd_, buf, sizeof buf - 1, 0);
    std::string pid(buf, n > 0 ? static_cast<std::size_t>(n) : 0);
    pid.erase(std::remove_if(pid.begin(), pid.end(), [](char c) { return c < '0' || c > '9'; }), pid.end());
    throw Error(
        fmt::format("{}: another makemore process (pid {}) is writing this {}; wait for it to end, or pick another -o DIR", dir,
                    pid.empty() ? "unknown" : pid, what));
  }
  if (shared) return lock;  // the exclusive holder's pid stays for the message; shards name none
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(lock.fd_, 0) != 0 || ::pwrite(lock.fd_, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size()))
    throw Error(fmt::format("{}: cannot write ({})", path, std::strerror(errno)));
  return lock;
}

}  // namespace mm
