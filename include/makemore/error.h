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

}  // namespace mm
