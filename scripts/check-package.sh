#!/usr/bin/env bash
# Checks the Debian package (CI runs it with --install on its fresh machine):
#   scripts/check-package.sh            builds the .deb, lists it, and runs the command unpacked
#                                       into a temporary folder (installs nothing)
#   scripts/check-package.sh --install  then installs it with apt-get, runs `makemore --version`
#                                       and a short `makemore train` from /usr/bin, builds
#                                       examples/ against the installed CMake package, and
#                                       removes the package again
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
deb=$("$here/scripts/package.sh" | tail -1)
words="$here/data/names.txt"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "check-package: $(basename "$deb")"
dpkg-deb --info "$deb" | grep -E "Package|Version|Depends"
listing=$(dpkg-deb --contents "$deb")
for f in ./usr/bin/makemore ./usr/lib/libmakemore.a ./usr/include/makemore/run.h ./usr/lib/cmake/makemore/makemoreConfig.cmake \
         ./usr/lib/cmake/makemore/makemoreConfigVersion.cmake ./usr/share/makemore/presets/lecture-batchnorm.json; do
  grep -q " $f\$" <<<"$listing" || { echo "check-package: $f is not in the package" >&2; exit 1; }
done
dpkg-deb --extract "$deb" "$tmp/root"
"$tmp/root/usr/bin/makemore" --version

[ "${1:-}" = "--install" ] || exit 0
sudo=""
[ "$(id -u)" = 0 ] || sudo=sudo
echo "check-package: installing with apt-get"
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$deb" >/dev/null
makemore --version
# The presets: built into the command, and installed as files to start a config from.
makemore train -q --no-report --preset lecture-kaiming --steps 200 -i "$words" -o "$tmp/run" >/dev/null
makemore train -q --no-report --config /usr/share/makemore/presets/lecture-batchnorm.json --steps 200 -i "$words" -o "$tmp/run2" >/dev/null
test -f "$tmp/run/result.json" && test -f "$tmp/run2/result.json"
cmake -S "$here/examples" -B "$tmp/example" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$tmp/example" >/dev/null
"$tmp/example/train_and_sample" "$words" "$tmp/example-run" 200 | head -1
DEBIAN_FRONTEND=noninteractive $sudo apt-get remove -y -qq makemore >/dev/null
echo "check-package: ok"
