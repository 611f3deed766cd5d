#!/usr/bin/env bash
# Installs the Debian packages makemore.cpp needs to build and test (idempotent), then
# fetches names.txt into data/. Runs as root, or through sudo otherwise.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)

# Each one is used (2026-12-04): the compiler and build tools (build.sh uses ninja when present);
# the library's dependencies (CMakeLists.txt's find_package / find_path: Eigen, Boost.Math for the
# init study's t quantiles, CLI11 for the command, nlohmann_json, fmt, zlib for the report's PNGs,
# libxsmm for the small products); GoogleTest for the suite; curl and ca-certificates for
# get-data.sh's download of names.txt; the Python module (python/) and its tests.
pkgs=(g++ cmake ninja-build
      libeigen3-dev libboost-math-dev libcli11-dev nlohmann-json3-dev libfmt-dev zlib1g-dev libxsmm-dev
      libgtest-dev ca-certificates curl
      python3-dev pybind11-dev python3-numpy python3-pytest)
if [ "${MM_WITH_TORCH:-0}" = 1 ]; then pkgs+=(python3-torch libopenblas0-pthread); fi
# The lecture notebook's test runs it in a Jupyter kernel and draws its figures.
if [ "${MM_WITH_NOTEBOOK:-0}" = 1 ]; then pkgs+=(python3-nbclient python3-ipykernel python3-matplotlib); fi
if [ "${MM_WITH_CHROMIUM:-0}" = 1 ]; then pkgs+=(chromium); fi
# The house style checker (tools/format.sh --check), run by CI.
if [ "${MM_WITH_CLANG_FORMAT:-0}" = 1 ]; then pkgs+=(clang-format git); fi
# MPI studies (docs/cluster.md): Open MPI's headers and library, and mpirun.
if [ "${MM_WITH_MPI:-0}" = 1 ]; then pkgs+=(libopenmpi-dev openmpi-bin); fi
# ccache: CI compiles the library three times (build/ with MPI, scripts/check-install.sh's
# subproject, scripts/package.sh's build without MPI); the later two hit its cache.
if [ "${MM_WITH_CCACHE:-0}" = 1 ]; then pkgs+=(ccache); fi
# The libFuzzer harnesses (scripts/fuzz.sh): clang and its runtime libraries (libFuzzer, ASan, UBSan).
if [ "${MM_WITH_FUZZ:-0}" = 1 ]; then pkgs+=(clang libclang-rt-dev); fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { echo "setup: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
    sudo=sudo
  fi
  echo "setup: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
"$here/scripts/get-data.sh"
