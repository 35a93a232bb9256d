"""examples/quickstart.ipynb, executed top to bottom at a small step count."""

from pathlib import Path

import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "quickstart.ipynb"


def test_the_notebook_is_committed_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)


@pytest.mark.slow
def test_the_quickstart_runs_end_to_end(tmp_path, monkeypatch):
    from gridnoise import rundir

    monkeypatch.setenv("GRIDNOISE_QUICKSTART_STEPS", "30")
    runs = tmp_path / "tmp"  # the kernel's temporary directory: `gridnoise.train` puts its runs there
    runs.mkdir()
    monkeypatch.setenv("TMPDIR", str(runs))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 3  # samples over the data, the grids, samples of the CSV run
    table = next(o for o in nb.cells[-2].outputs if "text/html" in o.get("data", {}))["data"]
    assert "kl_divergence" in table["text/html"] and "conditioning, DDIM-20" in table["text/html"]

    # The notebook trained three runs of the steps asked for: baseline and conditioning on moons, and the CSV run.
    configs = {d: rundir.read_config(d) for d in runs.glob("gridnoise-run-*")}
    trained = {(cfg.variant, Path(cfg.dataset).name): d for d, cfg in configs.items()}
    assert set(trained) == {("baseline", "moons"), ("conditioning", "moons"), ("conditioning", "my_points.csv")}
    for d in trained.values():
        assert rundir.read_losses(d).shape == (30,)
        assert [(s["start_step"], s["end_step"]) for s in rundir.read_segments(d)] == [(0, 30)]
    # and its table shows those runs' metrics (rounded to 3 places): the notebook's own numbers
    row = next(ln.split() for ln in table["text/plain"].splitlines() if ln.startswith("kl_divergence"))
    shown = [float(v) for v in row[1:]]
    kls = [rundir.read_metrics(trained[(v, "moons")])["kl_divergence"] for v in ("baseline", "conditioning")]
    assert shown[:2] == pytest.approx([round(v, 3) for v in kls], abs=1e-9)
    assert np.isfinite(shown[2])
