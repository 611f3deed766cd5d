#!/usr/bin/env python3
"""Prints a run's checkpoint from Python: each tensor's name, shape and first values, the step and
the config, read through the makemore module (its loader checks every name, shape and the
checksum). With --torch, the same tensors in PyTorch's layouts (makemore.torch.state_dict).

    PYTHONPATH=build/python python3 tools/read_checkpoint.py runs/bn [--torch]

A missing or damaged run is one line on stderr and exit status 1.
"""
import argparse
import os
import signal
import sys


def main():
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `| head` ends the output quietly
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", help="a run folder (or its model.safetensors)")
    ap.add_argument("--torch", action="store_true", help="PyTorch's names and layouts (needs torch)")
    a = ap.parse_args()
    import numpy as np
    import makemore

    path = os.path.dirname(a.run) if os.path.basename(a.run) == "model.safetensors" else a.run
    try:
        run = makemore.Run.open(path or ".")
    except (OSError, ValueError) as e:
        print(f"read_checkpoint: {e}", file=sys.stderr)
        return 1
    if a.torch:
        import makemore.torch
        tensors = {k: v.numpy() for k, v in makemore.torch.state_dict(run).items()}
    else:
        tensors = {**run.model.parameters, **run.model.buffers}
    print(f"{run.dir}: {len(tensors)} tensors, step {run.step}, config {run.config.name}")
    for name, value in tensors.items():
        print(f"  {name:30s} {str(list(value.shape)):16s} {np.array2string(np.ravel(value)[:4], precision=4)}")
    print("vocab:", "".join(run.vocab))
    return 0


if __name__ == "__main__":
    sys.exit(main())
