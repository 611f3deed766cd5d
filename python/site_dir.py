"""Prints where, relative to an install prefix, python3 imports compiled packages from
(CMake's install rule for the `makemore` module uses it)."""
import os
import sysconfig

scheme = sysconfig.get_default_scheme() if hasattr(sysconfig, "get_default_scheme") else "posix_prefix"
path = os.path.relpath(sysconfig.get_path("platlib", scheme, vars={"platbase": "/P", "base": "/P"}), "/P")
if scheme == "posix_local" and path.startswith("local" + os.sep):  # Debian: made for prefix /usr
    path = path[len("local" + os.sep):]
print(path)
