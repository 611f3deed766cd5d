#!/usr/bin/env bash
# Checks the Debian package that scripts/package.sh builds (CI runs it with --install on its
# fresh machine):
#   scripts/check-package.sh            builds the .deb, checks its contents, and runs the command
#                                       unpacked into a temporary folder (installs nothing)
#   scripts/check-package.sh --install  then, as root or through sudo, installs it with apt-get and
#                                       uses it from the installed files: `makemore --version`, a
#                                       short `train` and `sample`, the command (built without MPI)
#                                       under mpirun saying so in one line, `import makemore` in
#                                       python3, examples/ built with find_package(makemore); then
#                                       purges it and checks that none of its files is left
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
deb=$("$here/scripts/package.sh" | tail -1)
words="$here/data/names.txt"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "check-package: $(basename "$deb")"
dpkg-deb --info "$deb" | grep -E "^ (Package|Version|Depends):"
listing=$(dpkg-deb --contents "$deb" | awk '{print $6}')
lib=usr/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)
for f in usr/bin/makemore $lib/libmakemore.a usr/include/makemore/run.h $lib/cmake/makemore/makemoreConfig.cmake \
  $lib/cmake/makemore/makemoreConfigVersion.cmake usr/share/makemore/presets/lecture-batchnorm.json usr/share/doc/makemore/LICENSE; do
  grep -qx "./$f" <<<"$listing" || { echo "check-package: /$f is not in the package" >&2; exit 1; }
done
python=$(grep -o "^\./usr/lib/python3[^/]*/dist-packages/makemore/_core[^/]*\.so$" <<<"$listing" || true)
dpkg-deb --extract "$deb" "$tmp/root"
"$tmp/root/usr/bin/makemore" --version

[ "${1:-}" = "--install" ] || exit 0
sudo=""
[ "$(id -u)" = 0 ] || sudo=sudo
if dpkg-query -W -f='${Status}' makemore 2>/dev/null | grep -q "ok installed"; then
  echo "check-package: makemore is already installed (dpkg -s makemore); remove it first: this check installs and purges it" >&2
  exit 1
fi
echo "check-package: installing with apt-get"
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$deb" >/dev/null
trap 'DEBIAN_FRONTEND=noninteractive $sudo apt-get purge -y -qq makemore >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT
installed=$(dpkg -L makemore)
[ "$(command -v makemore)" = /usr/bin/makemore ] || { echo "check-package: makemore on PATH is $(command -v makemore), not /usr/bin/makemore" >&2; exit 1; }
cd "$tmp"
makemore --version
# The presets: built into the command, and installed as files to start a config from.
makemore train -q --no-report --preset lecture-kaiming --steps 200 -i "$words" -o run >/dev/null
makemore train -q --no-report --config /usr/share/makemore/presets/lecture-batchnorm.json --steps 200 -i "$words" -o run2 >/dev/null
test -f run/result.json && test -f run2/result.json
[ "$(makemore sample -o run -n 5 | wc -l)" = 5 ] || { echo "check-package: makemore sample did not print 5 names" >&2; exit 1; }

# Built without MPI, under mpirun: rank 0 says so in one line, the other ranks say nothing, no
# study is written, and the launch fails (tests/test_sweep.cpp checks the same in a build without
# MPI with the launcher's variables set by hand; this is the real mpirun).
if command -v mpirun >/dev/null; then
  rc=0
  mpirun --allow-run-as-root --oversubscribe -np 2 makemore study sweep -i "$words" -o st --steps 1 >mpi.out 2>mpi.err || rc=$?
  if [ "$rc" = 0 ] || [ "$(grep -c "built without MPI" mpi.err)" != 1 ] || [ -e st ] || [ -s mpi.out ]; then
    echo "check-package: under mpirun -np 2 the command built without MPI should say so once and fail (exit $rc):" >&2
    cat mpi.out mpi.err >&2
    exit 1
  fi
  echo "mpirun -np 2 (exit $rc): $(grep "built without MPI" mpi.err)"
fi

# The Python module, when the package has it: Debian's python3 imports it from /usr and reads the
# run, writing its bytecode beside it as root does (the package's prerm removes that again).
if [ -n "$python" ]; then
  env -u PYTHONDONTWRITEBYTECODE /usr/bin/python3 -c "import makemore, sys; r = makemore.Run.open(sys.argv[1]); print('python:', makemore.__file__, r.step, 'steps')" run
fi

cmake -S "$here/examples" -B example -DCMAKE_BUILD_TYPE=Release >/dev/null
grep -q "^makemore_DIR:PATH=/usr/" example/CMakeCache.txt || { echo "check-package: examples/ did not find the installed package" >&2; exit 1; }
cmake --build example >/dev/null
example/train_and_sample "$words" example-run 200 | head -1

echo "check-package: purging"
DEBIAN_FRONTEND=noninteractive $sudo apt-get purge -y -qq makemore >/dev/null
trap 'rm -rf "$tmp"' EXIT
left=$(while read -r f; do [ "$f" = /. ] || [ ! -e "$f" ] || dpkg -S "$f" >/dev/null 2>&1 || echo "$f"; done <<<"$installed")
[ -z "$left" ] || { echo "check-package: left behind after purge:"$'\n'"$left" >&2; exit 1; }
echo "check-package: ok"
