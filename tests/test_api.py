"""The public Python API end to end, as a notebook uses it."""

import subprocess
import sys

import numpy as np
import pytest

import gridnoise
from gridnoise.errors import ConfigError, DataError

from conftest import study_file

SMALL = dict(n_points=1000, diffusion={"num_timesteps": 20}, train={"steps": 30, "batch_size": 64,
                                                                     "grid_snapshot_every": 30},
             eval={"num_samples": 300})


def test_every_public_name_resolves_and_import_stays_light():
    for name in gridnoise.__all__:
        assert getattr(gridnoise, name) is not None, name
    with pytest.raises(AttributeError):
        gridnoise.nothing_here  # noqa: B018
    code = "import sys, gridnoise; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


def test_make_config_resolves_the_variant_and_takes_overrides():
    cfg = gridnoise.make_config("multiscale_l1", dataset="rings", train={"steps": 5}, adaptation={"l1": {"fine": 1.0}})
    assert cfg.adaptation.grids == {"coarse": 5, "fine": 20} and cfg.adaptation.l1 == {"fine": 1.0}
    assert (cfg.dataset, cfg.train.steps, cfg.train.lr) == ("rings", 5, 3e-4)
    with pytest.raises(ConfigError, match="unknown key"):
        gridnoise.make_config("baseline", train={"stepz": 5})
    with pytest.raises(ConfigError, match="unknown variant"):
        gridnoise.make_config("grid7")


def test_load_data_from_a_name_a_file_and_an_array(tmp_path):
    assert gridnoise.load_data("moons", 100).shape == (100, 2)
    np.savetxt(tmp_path / "p.csv", np.arange(40.0).reshape(20, 2), delimiter=",", header="x,y", comments="")
    assert np.array_equal(gridnoise.load_data(tmp_path / "p.csv"), np.arange(40.0, dtype=np.float32).reshape(20, 2))
    assert gridnoise.load_data([[0, 1], [2, 3]] * 10).dtype == np.float32
    with pytest.raises(DataError, match="NaN or infinite value at row 2"):
        gridnoise.load_data(np.array([[0.0, 1.0], [np.nan, 0.0]] + [[1.0, 1.0]] * 20))


def test_train_sample_read_and_evaluate_a_run_in_python(tmp_path):
    run = gridnoise.train(gridnoise.make_config("grid10", dataset="moons", **SMALL), progress=False)
    assert run.path.is_dir() and np.isfinite(run.metrics["kl_divergence"])  # a temporary directory
    assert run.losses.shape == (30,) and run.samples.shape == (300, 2)
    assert run.grids()["grid"].shape == (20, 10, 10) and run.grid_extent() == [-1.0, 1.0, -1.0, 1.0]
    assert set(run.grids(step=30)) == {"grid"}
    with pytest.raises(ConfigError, match="no grid snapshot at step 7"):
        run.grids(step=7)
    assert np.array_equal(run.sample(300), run.samples)  # its own seed redraws its samples
    ddim = run.sample(200, sampler="ddim", steps=5, seed=1)
    assert ddim.shape == (200, 2) and not np.array_equal(ddim, run.sample(200, sampler="ddim", steps=5, seed=2))
    again = gridnoise.load_run(run.path)
    assert again.config == run.config and again.metrics == run.metrics
    metrics = gridnoise.sample_metrics(run.samples, run.data())
    assert set(metrics) == {"kl_divergence", "w2", "sliced_w2", "mmd", "precision", "recall"}
    assert metrics["kl_divergence"] == pytest.approx(run.metrics["kl_divergence"], rel=1e-9)
    assert metrics["w2"] == pytest.approx(run.metrics["w2"], rel=1e-9)  # the run's own seed 0
    assert gridnoise.evaluate(run.samples, run.data()) == metrics  # the former name still works


def test_train_on_an_array_in_its_own_units(tmp_path):
    rng = np.random.default_rng(0)
    points = rng.normal(size=(1500, 2)) * [30.0, 10.0] + [500.0, -200.0]
    run = gridnoise.train(gridnoise.make_config("conditioning", **SMALL), data=points, out=tmp_path / "mine",
                          progress=False)
    assert np.array_equal(run.data(), points.astype(np.float32))
    assert abs(np.median(run.samples[:, 0]) - 500) < 60 and abs(np.median(run.samples[:, 1]) + 200) < 30
    assert run.config.data.scale > 1 and run.grid_extent()[0] > 100  # the grids' extent in the data's units
    with pytest.raises(gridnoise.GridnoiseError, match="not empty"):
        gridnoise.train(gridnoise.make_config("baseline", **SMALL), data=points, out=tmp_path / "mine")


@pytest.mark.slow
def test_run_an_experiment_and_read_it_as_a_dataframe(tmp_path):
    experiment = study_file(tmp_path / "e.toml", "api", ["moons", "rings"], [0, 1],
                            '[runs.base]\nvariant = "baseline"\n[runs.grid]\nvariant = "grid10_data"\n')
    study = gridnoise.run_experiment(experiment, tmp_path / "study", workers=2)
    frame = study.to_dataframe()
    assert len(frame) == 8 and {"run", "label", "variant", "dataset", "seed", "kl_divergence", "w2"} <= set(frame)
    assert sorted(frame["run"].unique()) == ["base", "grid"] and frame["kl_divergence"].notna().all()
    assert gridnoise.load_study(tmp_path / "study").to_dataframe().equals(frame)
    row = frame.query("run == 'grid' and dataset == 'rings' and seed == 1").iloc[0]
    assert study.run("grid", "rings", 1).metrics["kl_divergence"] == row["kl_divergence"]
