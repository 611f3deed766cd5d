// The one exception type the library throws for bad input (files, configs, checkpoints).
// Its message is a complete one-line error for the user: what is wrong, where, and the fix.
#pragma once
#include <stdexcept>
#include <string>

namespace mm {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// The file or folder named by the input does not exist (a front end may map it to its own
// "not found" error: Python's FileNotFoundError). The message is complete, as for Error.
class NotFound : public Error {
 public:
  using Error::Error;
};

// The command line asked for something impossible (a --grid value no config accepts, a bad
// --shard): the front end exits 2, as for an unknown option, instead of 1.
class UsageError : public Error {
 public:
  using Error::Error;
};

}  // namespace mm
