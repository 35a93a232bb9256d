"""Plug-in adaptations and data sets: from a module on PYTHONPATH or an installed entry point, in
`train`, in a study on a real local cluster, and through `gridnoise.testing.check_adaptation`."""

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from gridnoise.adaptation import ConditioningGridAdaptation, GridAdaptation, ode_skip_reason
from gridnoise.config import AdaptationConfig, RunConfig
from gridnoise.data import load
from gridnoise.errors import ConfigError, DataError
from gridnoise.plugins import ADAPTATIONS, adaptation_class
from gridnoise.testing import check_adaptation

from conftest import gridnoise, loopback_cluster, study_file

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

PLUGIN = '''
import numpy as np

from gridnoise.adaptation import ConditioningGridAdaptation


class HalvedGrid(ConditioningGridAdaptation):
    """g is the grid's value at x_t / 2."""

    def noise_scale(self, points, timesteps):
        return super().noise_scale(points / 2, timesteps)


def blobs(n, rng):
    centres = np.array([[-2.0, 0.0], [2.0, 0.0]])
    return centres[rng.integers(0, 2, n)] + rng.normal(0, 0.3, (n, 2))


def three_columns(n, rng):
    return np.zeros((n, 3))


NOT_A_CLASS = 3
'''

ENTRY_POINTS = """[gridnoise.adaptations]
halved_ep = myplug:HalvedGrid

[gridnoise.datasets]
blobs_ep = myplug:blobs
"""

TINY = """n_points = 1000
variant = "conditioning"
[diffusion]
num_timesteps = 20
[train]
steps = 20
batch_size = 64
grid_snapshot_every = 20
[eval]
num_samples = 200
[adaptation]
kind = "{kind}"
grids = {{ grid = 4 }}
extent_from_data = true
"""


@pytest.fixture
def plugin_dir(tmp_path, monkeypatch):
    """A directory holding the module `myplug` and an installed distribution declaring its entry points,
    on sys.path here and on PYTHONPATH for the commands and workers this test starts."""
    root = tmp_path / "site"
    root.mkdir()
    (root / "myplug.py").write_text(PLUGIN)
    dist = root / "myplug-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: myplug\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(ENTRY_POINTS)
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]))
    yield root
    sys.modules.pop("myplug", None)


@pytest.mark.parametrize("kind", list(ADAPTATIONS))
def test_every_built_in_adaptation_passes_the_conformance_checks(kind):
    check_adaptation(ADAPTATIONS[kind])


def test_the_worked_example_passes_and_is_smooth(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLES))
    from bilinear_grid import BilinearGridAdaptation

    check_adaptation(BilinearGridAdaptation)
    assert len((EXAMPLES / "bilinear_grid.py").read_text().splitlines()) < 100
    ad = BilinearGridAdaptation.from_config(AdaptationConfig(grids={"grid": 4}, extent=[0, 4, 0, 4]), 1)
    with torch.no_grad():
        ad.grids()["grid"].copy_(torch.arange(16.0).reshape(1, 4, 4))  # value 4 i + j in cell (i, j)
    t = torch.zeros(1, dtype=torch.long)
    at = lambda x, y: float(ad.noise_scale(torch.tensor([[x, y]]), t).detach())  # noqa: E731
    assert at(1.5, 2.5) == 6.0  # cell (1, 2)'s centre: its own value
    assert at(2.0, 2.5) == pytest.approx(8.0)  # halfway to cell (2, 2): the mean of 6 and 10
    assert at(1.5, 2.75) == pytest.approx(6.25)  # a quarter of the way to cell (1, 3)
    assert abs(at(1.999, 1.2) - at(2.001, 1.2)) < 0.01  # no jump at a cell border
    assert at(-5.0, 0.2) == at(0.1, 0.2) == 0.0  # held constant beyond the outermost centres
    # it declares its field continuous, so `gridnoise evaluate` solves its ODE with no edge jumps
    assert ode_skip_reason(ad) is None and [len(e) for e in ad.field_edges()] == [0, 0]


class NotOnes(ConditioningGridAdaptation):
    """Broken: starts its grids at 2."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        with torch.no_grad():
            for p in self.parameters():
                p.fill_(2.0)


class LooksElsewhere(ConditioningGridAdaptation):
    """Broken: claims the same lookup but trains with g one unit away from x_t."""

    def training_inputs(self, scheduler, x_start, noise, timesteps):
        x_t = scheduler.add_noise(x_start, noise, timesteps)
        return x_t, self.noise_scale(x_t + 1.0, timesteps)


class UnknownSampler(GridAdaptation):
    supported_samplers = ("euler",)


@pytest.mark.parametrize("cls, message", [
    (NotOnes, "grids are not all 1"), (LooksElsewhere, "same_lookup is True"),
    (UnknownSampler, "supported_samplers must be"), (int, "not a subclass"),
])
def test_check_adaptation_names_what_a_broken_adaptation_breaks(cls, message):
    with pytest.raises(AssertionError, match=message):
        check_adaptation(cls)


def test_plugins_by_reference_and_by_entry_point(plugin_dir):
    import myplug

    assert adaptation_class("myplug:HalvedGrid") is myplug.HalvedGrid
    assert adaptation_class("halved_ep") is myplug.HalvedGrid
    check_adaptation(myplug.HalvedGrid)
    points = load("myplug:blobs", 500, seed=3)
    assert points.shape == (500, 2) and points.dtype == np.float32
    assert np.array_equal(points, load("blobs_ep", 500, seed=3))  # the same function, the same stream
    assert np.array_equal(points, myplug.blobs(500, np.random.default_rng(3)).astype(np.float32))
    cfg = RunConfig(dataset="blobs_ep", variant="conditioning", adaptation=AdaptationConfig(
        kind="halved_ep", grids={"grid": 4})).validate()
    assert cfg.adaptation.kind == "halved_ep"


@pytest.mark.parametrize("name, message", [
    ("nosuchmodule:Thing", "cannot import module 'nosuchmodule'"), ("myplug:Missing", "has no 'Missing'"),
    ("myplug:NOT_A_CLASS", "not a subclass"), ("halved", "unknown adaptation kind 'halved'"),
])
def test_bad_adaptation_plugins_are_one_line_errors(plugin_dir, name, message):
    with pytest.raises(ConfigError, match=message) as info:
        adaptation_class(name)
    assert "\n" not in str(info.value)
    if name == "halved":
        assert "halved_ep" in str(info.value)  # installed entry points are offered


def test_bad_dataset_plugins_are_one_line_errors(plugin_dir):
    with pytest.raises(DataError, match=r"shape \(40, 3\)"):
        load("myplug:three_columns", 40)
    with pytest.raises(DataError, match="no 'nothing'"):
        load("myplug:nothing", 40)
    with pytest.raises(ConfigError, match="unknown data set 'blobs'.*blobs_ep"):
        RunConfig(dataset="blobs").validate()


def test_train_runs_a_plugin_adaptation_on_a_plugin_data_set(plugin_dir, tmp_path):
    config = tmp_path / "c.toml"
    config.write_text(TINY.format(kind="myplug:HalvedGrid"))
    out = tmp_path / "run"
    gridnoise("train", "--config", config, "--dataset", "blobs_ep", "--out", out, "--no-progress")
    metrics = json.loads((out / "metrics.json").read_text())
    assert np.isfinite(metrics["kl_divergence"]) and "grid_variance" in metrics
    saved = (out / "config.toml").read_text()
    assert 'kind = "myplug:HalvedGrid"' in saved and 'dataset = "blobs_ep"' in saved
    gridnoise("sample", out, "-n", 50, "--out", tmp_path / "s.npz")  # the plug-in loads again to sample
    # without the plug-in on the path: one line, no traceback
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    import subprocess

    proc = subprocess.run([sys.executable, "-m", "gridnoise", "sample", str(out), "--out", str(tmp_path / "t.npz")],
                          capture_output=True, text=True, env=env, cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "cannot import module 'myplug'" in proc.stderr


@pytest.mark.slow
def test_a_study_on_a_local_cluster_runs_plugins(plugin_dir, tmp_path):
    experiment = study_file(tmp_path / "plug.toml", "plug", ["blobs_ep", "myplug:blobs"], [0], STUDY_RUNS)
    out = tmp_path / "study"
    proc = gridnoise("run", experiment, "--out", out, "--workers", 2, "--no-progress")
    assert "4 tasks done" in proc.stdout and "0 failed" in proc.stdout
    rows = (out / "results.csv").read_text().splitlines()
    assert any(r.startswith("halved,halved,conditioning,myplug:blobs,0,kl_divergence,") for r in rows)


STUDY_RUNS = """[runs.base]
variant = "baseline"
[runs.halved]
variant = "conditioning"
[runs.halved.adaptation]
kind = "myplug:HalvedGrid"
"""


@pytest.mark.slow
def test_a_remote_scheduler_runs_plugins_its_workers_can_import(plugin_dir, tmp_path):
    experiment = study_file(tmp_path / "plug.toml", "plug", ["blobs_ep", "myplug:blobs"], [0], STUDY_RUNS)
    with loopback_cluster(workers=1) as (address, _):  # a worker started with the plug-in on its PYTHONPATH
        proc = gridnoise("run", experiment, "--out", tmp_path / "study", "--scheduler", address, "--no-progress")
    assert "4 tasks done" in proc.stdout and "0 failed" in proc.stdout
    # a worker without it: every task that needs the plug-in fails, and says what is missing
    bare = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    with loopback_cluster(workers=1, env=bare) as (address, _):
        proc = gridnoise("run", experiment, "--out", tmp_path / "bare", "--scheduler", address, "--no-progress",
                         check=False)
    assert proc.returncode == 1 and "cannot import module 'myplug'" in proc.stderr
