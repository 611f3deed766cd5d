"""makemore.cpp from Python: the library's runs, datasets, models and diagnostics.

    import makemore
    ds = makemore.Dataset("data/names.txt", block_size=3)
    run = makemore.train(makemore.Config.from_preset("lecture-batchnorm"), ds, out="runs/bn", steps=20000)
    run.eval(); run.sample(5); run.inspect().layers[2].out

Every call is a thin binding of libmakemore (what the `makemore` command runs); errors are
FileNotFoundError / ValueError with the command's one-line messages. makemore.torch converts a
run into a PyTorch module.
"""
from ._core import (Config, Dataset, Inspection, LayerStats, Model, Run, Split, inspect, presets, resume,
                    train)

__all__ = ["Config", "Dataset", "Inspection", "LayerStats", "Model", "Run", "Split", "inspect", "load_study", "presets",
           "resume", "train"]


def load_study(path):
    """A study's results as a list of dicts, one per row, ready for pandas.DataFrame: the variants
    of `makemore study init -o DIR` (one per preset, with mean / std over seeds) or the cells of
    `makemore study depth -o DIR` (one per training). `path`: the study folder or its study.json."""
    import json
    import os

    file = os.path.join(path, "study.json") if os.path.isdir(path) else path
    with open(file, encoding="utf-8") as f:
        study = json.load(f)
    for key in ("variants", "cells"):
        if isinstance(study.get(key), list):
            return [dict(row) for row in study[key]]
    raise ValueError(f"{file}: not a study.json of `makemore study init` or `makemore study depth`")
