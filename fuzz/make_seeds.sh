#!/usr/bin/env bash
# Regenerates the binary seeds in fuzz/corpus/ with build/makemore: a 3-step run of a tiny
# network on the ten words fuzz_load_run.cpp writes as words.txt, so that mutations of the
# seeds reach past the vocabulary check into evaluation, sampling and the train state.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${MM_BINARY:-$here/build/makemore}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf 'anna\nbob\ncarla\ndmitri\neve\nfatima\ngus\nhiro\nines\njon\n' >"$tmp/words.txt"
cat >"$tmp/tiny.json" <<'JSON'
{"name": "tiny", "data": {"block_size": 3},
 "model": {"n_embd": 2, "layers": [{"type": "linear", "out": 4, "bias": false}, {"type": "batchnorm1d"},
                                   {"type": "tanh"}, {"type": "linear", "out": "vocab"}]},
 "train": {"steps": 3, "batch_size": 4, "optimizer": "adam", "lr": 0.01}}
JSON
"$bin" train --config "$tmp/tiny.json" -i "$tmp/words.txt" -o "$tmp/run" --save-every 0 --diag-every 0 --no-report -q >/dev/null
c="$here/fuzz/corpus"
cp "$tmp/run/model.safetensors" "$c/safetensors/model.safetensors"
cp "$tmp/run/train_state.safetensors" "$c/safetensors/train_state.safetensors"
# fuzz_load_run's input: the checkpoint's length (4 bytes, little-endian), the checkpoint, the state.
size=$(stat -c %s "$tmp/run/model.safetensors")
{
  printf "\\x$(printf %02x $((size & 255)))\\x$(printf %02x $(((size >> 8) & 255)))\\x$(printf %02x $(((size >> 16) & 255)))\\x$(printf %02x $(((size >> 24) & 255)))"
  cat "$tmp/run/model.safetensors" "$tmp/run/train_state.safetensors"
} >"$c/load_run/tiny-run"
cp "$tmp/tiny.json" "$c/config/tiny.json"
for p in lecture-batchnorm wavenet deep-residual-layernorm; do cp "$here/presets/$p.json" "$c/config/$p.json"; done
cp "$tmp/words.txt" "$c/words/ten-names.txt"
printf 'Zoë\r\nJosé\n\n  ÅSA  \n李\n' >"$c/words/unicode-crlf.txt"
ls -l "$c"/*
