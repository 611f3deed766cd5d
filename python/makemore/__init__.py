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

__all__ = ["Config", "Dataset", "Inspection", "LayerStats", "Model", "Run", "Split", "inspect", "presets", "resume",
           "train"]
