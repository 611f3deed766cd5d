// The version of makemore.cpp this library was built as, for --version, result.json and the
// checkpoint's metadata: the release number, and the git commit when built from a checkout
// (cmake/version.cmake writes it at build time; a source tarball has no commit to name).
#pragma once
#include <string>

namespace mm {

// "0.1.0 (git e519bd3)", "0.1.0 (git e519bd3-dirty)" for uncommitted changes, or "0.1.0".
std::string version_string();

}  // namespace mm
