"""Shared fixtures: the lecture's names.txt (skipped when setup has not fetched it), the
`makemore` binary for cross-checks, and a small trained run made once per test session."""
import json
import os
import subprocess

import pytest

SOURCE = os.environ.get("MM_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
NAMES = os.path.join(SOURCE, "data", "names.txt")
BINARY = os.environ.get("MM_BINARY", os.path.join(SOURCE, "build", "makemore"))


@pytest.fixture(scope="session")
def names_path():
    if not os.path.exists(NAMES):
        pytest.skip("data/names.txt not found (scripts/setup.sh fetches it)")
    return NAMES


@pytest.fixture(scope="session")
def names(names_path):
    import makemore
    return makemore.Dataset(names_path, block_size=3)


def cli(*args):
    """Runs the makemore binary with --json and returns its parsed output."""
    out = subprocess.run([BINARY, *args, "--json"], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def small_run(tmp_path_factory, names):
    """lecture-batchnorm trained 300 steps (diagnostics every 100) through makemore.train."""
    import makemore
    out = tmp_path_factory.mktemp("runs") / "bn"
    cfg = makemore.Config.from_preset("lecture-batchnorm")
    return makemore.train(cfg, names, out=str(out), steps=300, diag_every=100, report=False)
