"""examples/quickstart.ipynb, executed top to bottom at a small step count."""

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "quickstart.ipynb"


def test_the_notebook_is_committed_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)


@pytest.mark.slow
def test_the_quickstart_runs_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setenv("GRIDNOISE_QUICKSTART_STEPS", "30")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 3  # samples over the data, the grids, samples of the CSV run
    table = next(o for o in nb.cells[-2].outputs if "text/html" in o.get("data", {}))["data"]["text/html"]
    assert "kl_divergence" in table and "conditioning, DDIM-20" in table
    assert os.environ.get("GRIDNOISE_QUICKSTART_STEPS") == "30"
