#!/usr/bin/env python3
"""Training speed through the Python module against the CLI (issue 20's numbers; a benchmark,
not a test): lecture-batchnorm trained N steps by `build/makemore train`, by makemore.train, and by
makemore.train with a callback every 1000 steps, interleaved and repeated; each run's steps/s is
the one result.json records (the training loop alone, the same clock for all three). Prints the
medians and the ratios.

    PYTHONPATH=build/python /usr/bin/python3 bench/python_speed.py [--steps 30000] [--repeat 5]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(here)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=30000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--preset", default="lecture-batchnorm")
    ap.add_argument("--binary", default=os.path.join(root, "build", "makemore"))
    ap.add_argument("--words", default=os.path.join(root, "data", "names.txt"))
    a = ap.parse_args()
    import makemore

    cfg = makemore.Config.from_preset(a.preset)
    words = makemore.Dataset(a.words, block_size=cfg.block_size)
    calls = []
    speeds = {"cli": [], "python": [], "python+callback": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.repeat):
            out = os.path.join(tmp, f"cli{r}")
            subprocess.run([a.binary, "train", "--preset", a.preset, "-i", a.words, "--steps", str(a.steps), "-o", out,
                            "--no-report", "-q"], check=True, capture_output=True)
            with open(os.path.join(out, "result.json")) as f:
                speeds["cli"].append(json.load(f)["steps_per_sec"])
            run = makemore.train(cfg, words, out=os.path.join(tmp, f"py{r}"), steps=a.steps, report=False)
            speeds["python"].append(run.result["steps_per_sec"])
            run = makemore.train(cfg, words, out=os.path.join(tmp, f"cb{r}"), steps=a.steps, report=False, every=1000,
                                 callback=lambda step, loss: calls.append(step))
            speeds["python+callback"].append(run.result["steps_per_sec"])
    med = {k: statistics.median(v) for k, v in speeds.items()}
    print(f"{a.preset}, {a.steps} steps x {a.repeat}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    for k, v in speeds.items():
        print(f"  {k:16s} median {med[k]:9.0f} steps/s   runs: {', '.join(f'{x:.0f}' for x in v)}")
    print(f"  makemore.train / CLI:          {med['python'] / med['cli']:.3f}")
    print(f"  callback every 1000 / without: {med['python+callback'] / med['python']:.3f} "
          f"({len(calls) // a.repeat} calls per run)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
