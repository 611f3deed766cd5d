// Putting files into a folder that a kill may interrupt at any moment and that someone else may
// have prepared (a run folder, a study folder): every file is written to a temp file beside its
// target and renamed over it, so a reader sees the old file or the new one, never half of one;
// nothing is ever written through a symbolic link this code did not create. Which files a run
// folder holds, and when they are written, is run.h's; this file only knows how to write one.
#pragma once
#include <cstddef>
#include <cstdio>
#include <string>
#include <string_view>

namespace mm {

// One file written all-or-nothing: the temp file is created next to `path` (same folder, so the
// rename cannot cross filesystems) with O_CREAT|O_EXCL|O_NOFOLLOW and an unpredictable name
// (NAME.tmp.<16 random hex digits>), so a planted file or link cannot redirect the write;
// commit() fsyncs it, renames it over `path` (replacing a symlink there, never following it)
// and fsyncs the folder. Destroyed without commit(): the temp file is removed. Errors are
// mm::Error naming `path`.
class AtomicFile {
 public:
  explicit AtomicFile(std::string path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  void write(const void* bytes, std::size_t size);
  void write(std::string_view text) { write(text.data(), text.size()); }
  void commit();

 private:
  std::string path_, name_, temp_name_;
  int dir_fd_ = -1, fd_ = -1;
  bool committed_ = false;
};

// The common case: the whole text at once.
void write_file_atomic(const std::string& path, std::string_view text);

// Removes the temp files an interrupted save left in `dir` (NAME.tmp.<hex digits>, which also
// matches the NAME.tmp.<pid> names of older versions); returns how many. Only the one process
// writing the folder (its lock holder) may call this: another writer's temp file in flight
// would go too.
int remove_temp_files(const std::string& dir);

// dir/name as a real folder, for writing into: created when missing; a symbolic link there is
// removed (not followed) and replaced by an empty folder; anything else that is not a folder is
// an mm::Error. Returns the folder's path.
std::string real_subdir(const std::string& dir, const std::string& name);

// Removes `path` when it is a file or a symbolic link (the link itself, never its target);
// a missing file is fine, a folder there is left alone.
void remove_file(const std::string& path);

// Opens a log (a .jsonl file) for writing lines: fresh (whatever is at `path`, a symlink
// included, is replaced by a new empty file) or appending to the regular file there (a symlink
// is an mm::Error naming it). Never writes through a symbolic link. fsync_file() puts what was
// flushed onto the disk.
std::FILE* open_log(const std::string& path, bool append);
void fsync_file(std::FILE* f, const std::string& path);
// Appends `text` to a log opened by open_log; a failed write (a full disk, a file size limit) is
// an mm::Error naming `path`, like every other write of a run folder's files.
void write_log(std::FILE* f, std::string_view text, const std::string& path);

// Run-folder components are checked with lstat: true when `path` itself is a symbolic link.
bool is_symlink(const std::string& path);

namespace testing_hooks {
// Called after every AtomicFile commit with the file's path: a test stops a child process there
// to see what a kill at that moment leaves. Null (nothing called) outside tests.
extern void (*after_commit)(const std::string& path);
// When set, replaces the random part of temp file names: a test plants a link at the very name
// the writer will try. Null (random names) outside tests.
extern std::string (*temp_suffix)();
}  // namespace testing_hooks

}  // namespace mm
