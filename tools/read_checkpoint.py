#!/usr/bin/env python3
"""Inspect a makemore.cpp checkpoint (safetensors format) from Python.

Prints each tensor's name, shape and a few values, and the metadata. Needs only the standard
library; uses numpy for the values if it is installed, and also cross-checks the file with the
`safetensors` package when that happens to be importable. Not used by the tests.

    python3 tools/read_checkpoint.py runs/model/model.safetensors
"""
import json
import math
import struct
import sys


def read_safetensors(path):
    """Returns (metadata dict, list of (name, shape, raw little-endian float32 bytes)) in file order."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise ValueError(f"{path}: too short to be a safetensors file")
    (n,) = struct.unpack("<Q", blob[:8])
    if 8 + n > len(blob):
        raise ValueError(f"{path}: header length {n} exceeds the file size {len(blob)}")
    header = json.loads(blob[8:8 + n].decode("utf-8"))
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
    return metadata, tensors


def main():
    if len(sys.argv) != 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    path = sys.argv[1]
    metadata, tensors = read_safetensors(path)
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
