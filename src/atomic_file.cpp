// The one way files get into a run or study folder: temp file beside the target (O_EXCL |
// O_NOFOLLOW, random name), fsync, rename, fsync of the folder. Every step goes through a
// descriptor of the target's folder (openat / renameat), so the folder cannot be swapped for
// another between creating the temp file and renaming it.
#include "makemore/atomic_file.h"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <random>

#include "makemore/error.h"

namespace mm {

namespace testing_hooks {
void (*after_commit)(const std::string& path) = nullptr;
std::string (*temp_suffix)() = nullptr;
}  // namespace testing_hooks

namespace {

std::string errno_text(int err) { return std::strerror(err); }

[[noreturn]] void fail_write(const std::string& path, int err) {
  throw Error(fmt::format("{}: cannot write ({}); check free disk space and that the folder is writable", path, errno_text(err)));
}

// 16 hex digits nobody can guess: a temp file's name must not be plantable in advance.
std::string random_hex() {
  unsigned char bytes[8];
  std::size_t got = 0;
  while (got < sizeof bytes) {
    const ssize_t n = getrandom(bytes + got, sizeof bytes - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      std::random_device rd;  // no getrandom (old kernel, seccomp): the library's own entropy source
      for (auto& b : bytes) b = static_cast<unsigned char>(rd());
      got = sizeof bytes;
      break;
    }
    got += static_cast<std::size_t>(n);
  }
  std::string s;
  for (unsigned char b : bytes) s += fmt::format("{:02x}", b);
  return s;
}

void write_all(int fd, const char* bytes, std::size_t size, const std::string& path) {
  while (size > 0) {
    const ssize_t n = ::write(fd, bytes, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail_write(path, errno);
    }
    bytes += n;
    size -= static_cast<std::size_t>(n);
  }
}

bool is_temp_name(const std::string& name) {
  const auto p = name.rfind(".tmp.");
  if (p == std::string::npos || p == 0 || p + 5 >= name.size()) return false;
  for (std::size_t i = p + 5; i < name.size(); ++i)
    if (!std::isxdigit(static_cast<unsigned char>(name[i]))) return false;
  return true;
}

}  // namespace

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)) {
  const std::filesystem::path p(path_);
  name_ = p.filename().string();
  if (name_.empty() || name_ == "." || name_ == "..") throw Error(fmt::format("{}: not a file name", path_));
  const std::string dir = p.parent_path().empty() ? std::string(".") : p.parent_path().string();
  dir_fd_ = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd_ < 0) {
    throw Error(fmt::format("{}: cannot write ({}); check the folder exists and is writable", path_, errno_text(errno)));
  }
  for (int attempt = 0; fd_ < 0; ++attempt) {
    temp_name_ = name_ + ".tmp." + (testing_hooks::temp_suffix ? testing_hooks::temp_suffix() : random_hex());
    fd_ = ::openat(dir_fd_, temp_name_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
    if (fd_ < 0 && (errno != EEXIST || attempt >= 8)) {
      const int err = errno;
      ::close(dir_fd_);
      throw Error(fmt::format("{}: cannot write ({}); check the folder exists and is writable", path_, errno_text(err)));
    }
  }
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlinkat(dir_fd_, temp_name_.c_str(), 0);
  ::close(dir_fd_);
}

void AtomicFile::write(const void* bytes, std::size_t size) {
  if (fd_ < 0) throw Error(fmt::format("{}: written after it was committed", path_));
  write_all(fd_, static_cast<const char*>(bytes), size, path_);
}

void AtomicFile::commit() {
  // The data must be on disk before the rename makes it the file, or a crash could leave an
  // empty file under the real name.
  if (::fsync(fd_) != 0) fail_write(path_, errno);
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) fail_write(path_, errno);
  // renameat replaces whatever entry is at the target, a symbolic link included, without
  // following it.
  if (::renameat(dir_fd_, temp_name_.c_str(), dir_fd_, name_.c_str()) != 0) fail_write(path_, errno);
  committed_ = true;
  // Makes the rename itself durable; some filesystems refuse fsync on folders (best effort).
  (void)::fsync(dir_fd_);
  if (testing_hooks::after_commit) testing_hooks::after_commit(path_);
}

void write_file_atomic(const std::string& path, std::string_view text) {
  AtomicFile f(path);
  f.write(text);
  f.commit();
}

int remove_temp_files(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) return 0;
  int removed = 0;
  const int dfd = ::dirfd(d);
  while (const dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (!is_temp_name(name)) continue;
    struct stat st {};
    if (::fstatat(dfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    if ((S_ISREG(st.st_mode) || S_ISLNK(st.st_mode)) && ::unlinkat(dfd, name.c_str(), 0) == 0) ++removed;
  }
  ::closedir(d);
  return removed;
}

bool is_symlink(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0 && S_ISLNK(st.st_mode);
}

std::string real_subdir(const std::string& dir, const std::string& name) {
  const std::string path = dir + "/" + name;
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) return path;
    if (!S_ISLNK(st.st_mode)) throw Error(fmt::format("{}: not a folder; remove it (this program writes its files there)", path));
    // A link would send our writes (and the removal of stale figures) to wherever it points.
    if (::unlink(path.c_str()) != 0) fail_write(path, errno);
  } else if (errno != ENOENT) {
    fail_write(path, errno);
  }
  if (::mkdir(path.c_str(), 0777) != 0 && errno != EEXIST) fail_write(path, errno);
  if (::lstat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    throw Error(fmt::format("{}: not a folder (replaced while being created); remove it and try again", path));
  return path;
}

void remove_file(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return;
    fail_write(path, errno);
  }
  if (S_ISDIR(st.st_mode)) return;
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) fail_write(path, errno);
}

std::FILE* open_log(const std::string& path, bool append) {
  int fd = -1;
  if (append) {
    fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0666);
    if (fd < 0 && errno == ELOOP)
      throw Error(
          fmt::format("{}: is a symbolic link; a run folder's files must be its own, not links (remove the link "
                      "and train again)",
                      path));
  } else {
    remove_file(path);  // a link there is removed, so the new file cannot land in its target
    fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
  }
  if (fd < 0) fail_write(path, errno);
  std::FILE* f = ::fdopen(fd, append ? "a" : "w");
  if (!f) {
    const int err = errno;
    ::close(fd);
    fail_write(path, err);
  }
  return f;
}

void write_log(std::FILE* f, std::string_view text, const std::string& path) {
  if (std::fwrite(text.data(), 1, text.size(), f) != text.size()) fail_write(path, errno);
}

void fsync_file(std::FILE* f, const std::string& path) {
  if (std::fflush(f) != 0 || ::fsync(::fileno(f)) != 0) fail_write(path, errno);
}

}  // namespace mm
