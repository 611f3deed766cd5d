"""notebooks/lecture.ipynb runs top to bottom in a real Jupyter kernel without an error
(Debian: python3-nbclient, python3-ipykernel, python3-matplotlib; scripts/setup.sh installs them
with MM_WITH_NOTEBOOK=1, as CI does)."""
import os
import time

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("matplotlib")

from conftest import SOURCE  # noqa: E402


def test_lecture_notebook_runs(names_path, tmp_path):
    nb = nbformat.read(os.path.join(SOURCE, "notebooks", "lecture.ipynb"), as_version=4)
    import makemore
    # The kernel inherits the environment: this makemore (wherever PYTHONPATH pointed, made
    # absolute, since the kernel runs in tmp_path), and a backend that needs no display.
    os.environ["PYTHONPATH"] = os.path.dirname(os.path.dirname(os.path.abspath(makemore.__file__)))
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"  # figures become outputs
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    start = time.monotonic()
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    took = time.monotonic() - start
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
    images = sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert images >= 7, f"{images} figures drawn"
    assert took < 120, f"the notebook took {took:.0f} s; keep it under two minutes"
