#!/usr/bin/env bash
# Puts the lecture's names.txt at data/names.txt: copied from ../shared/data when that exists,
# downloaded from the makemore repository otherwise; verified against its sha256 either way.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
want=0a30b5557f192f32ab962680889aac5f6fda0f4cecf40a6d0b5694f58ea8cc4d
dst="$here/data/names.txt"
url=https://raw.githubusercontent.com/karpathy/makemore/master/names.txt
mkdir -p "$here/data"
if [ -f "$dst" ] && [ "$(sha256sum "$dst" | cut -d' ' -f1)" = "$want" ]; then exit 0; fi
tmp="$dst.part"
if [ -f "$here/../shared/data/names.txt" ]; then
  cp "$here/../shared/data/names.txt" "$tmp"
else
  echo "get-data: downloading names.txt from $url"
  curl -fsSL "$url" -o "$tmp"
fi
got=$(sha256sum "$tmp" | cut -d' ' -f1)
if [ "$got" != "$want" ]; then
  rm -f "$tmp"
  echo "get-data: names.txt has sha256 $got, expected $want; refusing to use it" >&2
  exit 1
fi
mv "$tmp" "$dst"
echo "get-data: data/names.txt ready (sha256 verified)"
