#!/usr/bin/env python3
"""Inspect a makemore.cpp checkpoint (safetensors format) from Python.

Prints each tensor's name, shape and a few values, and the metadata. Needs only the standard
library; uses numpy for the values if it is installed, and also cross-checks the file with the
`safetensors` package when that happens to be importable. Not used by the tests.

    python3 tools/read_checkpoint.py runs/model/model.safetensors   (or the run folder)

A damaged file is one line on stderr and exit status 1; makemore.cpp's checksum
(metadata makemore.data_fnv1a64) is verified when present.
"""
import json
import math
import os
import signal
import struct
import sys

CHECKSUM_KEY = "makemore.data_fnv1a64"  # written by makemore.cpp: FNV-1a 64 of the data section


def fnv1a64(chunks):
    h = 14695981039346656037
    for chunk in chunks:
        for byte in chunk:
            h = ((h ^ byte) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def read_safetensors(path):
    """Returns (metadata dict, list of (name, shape, raw little-endian float32 bytes)) in file order."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise ValueError(f"{path}: too short to be a safetensors file")
    (n,) = struct.unpack("<Q", blob[:8])
    if 8 + n > len(blob):
        raise ValueError(f"{path}: header length {n} exceeds the file size {len(blob)}")
    try:
        header = json.loads(blob[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: the header is not UTF-8 JSON ({e}); not a safetensors file, or a damaged one")
    if not isinstance(header, dict):
        raise ValueError(f"{path}: the header is not a JSON object")
    data = blob[8 + n:]
    metadata = header.pop("__metadata__", None) or {}
    tensors = []
    for name, info in sorted(header.items(), key=lambda kv: tuple(kv[1]["data_offsets"])):
        if info["dtype"] != "F32":
            raise ValueError(f"{path}: tensor {name!r} has dtype {info['dtype']}, expected F32")
        begin, end = info["data_offsets"]
        shape = list(info["shape"])
        if end - begin != 4 * math.prod(shape) or end > len(data):
            raise ValueError(f"{path}: tensor {name!r} shape does not match its data_offsets")
        tensors.append((name, shape, data[begin:end]))
    if CHECKSUM_KEY in metadata and fnv1a64(raw for _, _, raw in tensors) != metadata[CHECKSUM_KEY]:
        raise ValueError(f"{path}: corrupt checkpoint (its values do not match the checksum written with them: "
                         "the file was damaged after it was saved)")
    return metadata, tensors


def main():
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `| head` ends the output quietly
    if len(sys.argv) != 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    path = sys.argv[1]
    if os.path.isdir(path):  # a run folder: its checkpoint
        path = os.path.join(path, "model.safetensors")
    try:
        metadata, tensors = read_safetensors(path)
    except (OSError, ValueError, KeyError, TypeError) as e:
        detail = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        prefix = "" if str(e).startswith(path) else f"{path}: "
        print(f"read_checkpoint: {prefix}{detail}", file=sys.stderr)
        return 1
    try:
        import numpy as np
    except ImportError:
        np = None

    print(f"{path}: {len(tensors)} tensors")
    for name, shape, raw in tensors:
        if np is not None:
            values = np.frombuffer(raw, dtype="<f4").reshape(shape)
            preview = np.array2string(values.ravel()[:4], precision=4)
        else:
            count = len(raw) // 4
            preview = list(struct.unpack(f"<{min(count, 4)}f", raw[:4 * min(count, 4)]))
        print(f"  {name:30s} {str(shape):16s} {preview}")
    print("metadata:")
    for key, value in sorted(metadata.items()):
        print(f"  {key}: {value}")

    # Optional cross-check: the reference reader must agree on names and shapes.
    try:
        from safetensors import safe_open
    except ImportError:
        return 0
    framework = "numpy" if np is not None else None
    if framework is None:
        print("safetensors is installed but numpy is not; skipping the cross-check")
        return 0
    with safe_open(path, framework=framework) as f:
        theirs = {name: list(f.get_tensor(name).shape) for name in f.keys()}
        their_meta = f.metadata() or {}
    ours = {name: shape for name, shape, _ in tensors}
    if theirs == ours and their_meta == metadata:
        print("safetensors package: loads the file and agrees")
    else:
        print("safetensors package: DISAGREES with this reader", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
