"""Trackers: what `--log tensorboard` and `--log mlflow` wrote, read back with each library's own
reader (TensorBoard's EventAccumulator, MLflow's MlflowClient) and checked against the run's files."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from gridnoise.config import RunConfig
from gridnoise.tracking import flat_params

from conftest import cli, gridnoise, study_file

STEPS, LOG_EVERY, SNAPSHOT_EVERY = 40, 10, 20
TRAIN = ["train", "--dataset", "moons", "--variant", "multiscale", "--steps", STEPS, "--n-points", 2000,
         "--timesteps", 20, "--num-samples", 300, "--set", f"train.log_every={LOG_EVERY}",
         "--set", f"train.grid_snapshot_every={SNAPSHOT_EVERY}", "--set", "eval.kl_every=20",
         "--set", "eval.kl_every_samples=200", "--no-progress"]


def events(logdir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    return acc


def window_means(values: np.ndarray, every: int) -> np.ndarray:
    return values.reshape(-1, every).mean(axis=1)


def same_series(logged, steps, values, rtol=1e-6) -> None:
    """Logged points (TensorBoard scalars or MLflow metrics: .step, .value) are `steps` and `values`."""
    assert [p.step for p in logged] == list(steps)
    assert np.allclose([p.value for p in logged], values, rtol=rtol)


def lr_at(step: int, steps: int = STEPS, lr: float = 3e-4) -> float:
    """The cosine-annealed learning rate after `step` scheduler steps (torch's closed form)."""
    return lr * (1 + math.cos(math.pi * step / steps)) / 2


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    out = tmp_path_factory.mktemp("tracked") / "run"
    gridnoise(*TRAIN, "--log", "tensorboard,mlflow", "--out", out)
    return out


def test_tensorboard_holds_the_runs_curves_figures_config_and_metrics(logged):
    acc = events(logged / "tensorboard")
    tags = acc.Tags()
    steps = list(range(LOG_EVERY, STEPS + 1, LOG_EVERY))
    with np.load(logged / "train_losses.npz") as f:
        loss, mse = f["loss"], f["mse"]
    for tag, expected in (("train/loss", window_means(loss, LOG_EVERY)), ("train/mse", window_means(mse, LOG_EVERY))):
        scalars = acc.Scalars(tag)
        assert [s.step for s in scalars] == steps
        assert np.allclose([s.value for s in scalars], expected, rtol=1e-6)
    assert np.allclose([s.value for s in acc.Scalars("train/lr")], [lr_at(s) for s in steps], rtol=1e-5)
    assert {"train/coarse_grid_variance", "train/fine_grid_variance"} <= set(tags["scalars"])
    kl = json.loads((logged / "kl_history.json").read_text())
    same_series(acc.Scalars("train/kl_divergence"), kl["step"], kl["kl_divergence"])

    metrics = json.loads((logged / "metrics.json").read_text())
    for name in ("kl_divergence", "w2", "eval_loss", "coarse_grid_variance"):
        (final,) = acc.Scalars(name)
        assert final.step == STEPS and final.value == pytest.approx(metrics[name], rel=1e-6)

    grids = acc.Images("grids")
    assert [i.step for i in grids] == [SNAPSHOT_EVERY, STEPS]
    assert all(i.encoded_image_string[:8] == b"\x89PNG\r\n\x1a\n" and i.width > 400 for i in grids)
    assert {"figures/samples", "figures/loss", "figures/grids"} <= set(tags["images"])

    # the config in TensorBoard's HParams view: every setting, and the final metrics beside it
    from tensorboard.plugins.hparams import plugin_data_pb2

    content = acc.PluginTagToContent("hparams")
    start = next(plugin_data_pb2.HParamsPluginData.FromString(c).session_start_info
                 for c in content.values() if plugin_data_pb2.HParamsPluginData.FromString(c).HasField(
                     "session_start_info"))
    hparams = {k: v.number_value if v.HasField("number_value") else v.string_value for k, v in start.hparams.items()}
    assert hparams["train.lr"] == pytest.approx(3e-4) and hparams["variant"] == "multiscale"
    assert json.loads(hparams["adaptation.grids"]) == {"coarse": 5, "fine": 20}
    assert "log.trackers" not in hparams and "config/text_summary" in tags["tensors"]


def test_mlflow_holds_the_run_with_its_params_metrics_and_images(logged):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{logged / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("gridnoise")
    assert experiment.artifact_location == (logged / "mlartifacts").as_uri()  # beside the store, not in the cwd
    (run,) = client.search_runs([experiment.experiment_id])
    assert json.loads((logged / "tracking.json").read_text()) == {"mlflow_run_id": run.info.run_id,
                                                                   "mlflow_tracking_uri": uri}
    assert run.info.status == "FINISHED" and run.info.run_name == "multiscale/moons/seed_0"
    assert {k: run.data.tags[k] for k in ("dataset", "seed", "variant")} == \
        {"dataset": "moons", "seed": "0", "variant": "multiscale"}
    assert run.data.params["train.lr"] == "0.0003" and run.data.params["train.steps"] == str(STEPS)
    assert run.data.params["diffusion.num_timesteps"] == "20" and "log.trackers" not in run.data.params

    with np.load(logged / "train_losses.npz") as f:
        expected = window_means(f["loss"], LOG_EVERY)
    history = client.get_metric_history(run.info.run_id, "train/loss")
    assert [m.step for m in history] == list(range(LOG_EVERY, STEPS + 1, LOG_EVERY))
    assert np.allclose([m.value for m in history], expected, rtol=1e-6)
    metrics = json.loads((logged / "metrics.json").read_text())
    for name in ("kl_divergence", "w2", "precision", "fine_grid_variance", "training_time"):
        assert run.data.metrics[name] == pytest.approx(metrics[name], rel=1e-9), name
    kl = json.loads((logged / "kl_history.json").read_text())
    same_series(client.get_metric_history(run.info.run_id, "train/kl_divergence"), kl["step"], kl["kl_divergence"])

    images = [f.path for f in client.list_artifacts(run.info.run_id, "images")]
    for key, steps in (("grids", (SNAPSHOT_EVERY, STEPS)), ("figures~samples", (STEPS,))):
        for step in steps:  # MLflow stores an image as <key, / as ~>+step+<step>+timestamp+...
            assert any(p.startswith(f"images/{key}+step+{step}+") and p.endswith(".png") for p in images), \
                (key, step, images)


def test_logging_changes_no_result(logged, tmp_path):
    plain = tmp_path / "plain"
    gridnoise(*TRAIN, "--out", plain)
    for name, key in (("samples.npz", "samples"), ("train_losses.npz", "loss")):
        with np.load(plain / name) as a, np.load(logged / name) as b:
            assert np.array_equal(a[key], b[key])
    a, b = (json.loads((d / "metrics.json").read_text()) for d in (plain, logged))
    assert {k: v for k, v in a.items() if "time" not in k} == {k: v for k, v in b.items() if "time" not in k}


def test_a_killed_run_resumes_into_the_same_tracker_runs(tmp_path):
    from collections import Counter

    from mlflow.tracking import MlflowClient

    from gridnoise import rundir

    steps, every = 600, 50
    args = [*TRAIN[:5], "--steps", steps, *TRAIN[7:], "--set", f"train.log_every={every}",
            "--set", "train.checkpoint_every=200", "--set", "train.grid_snapshot_every=200",
            "--set", "eval.kl_every=200", "--log", "tensorboard,mlflow"]
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "gridnoise", *map(str, args), "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (out / "checkpoint.pt").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = time.time()
    assert (out / "checkpoint.pt").exists() and not (out / "metrics.json").exists(), \
        "the run failed, or finished before it could be killed"
    checkpoint_step = int(rundir.load_checkpoint(out / "checkpoint.pt")["step"])
    gridnoise(*args, "--out", out, "--resume")
    # the resumed process trained from the checkpoint's step to the end, and only that
    assert [(s["start_step"], s.get("end_step")) for s in rundir.read_segments(out)] == \
        [(0, None), (checkpoint_step, steps)]
    assert 0 < checkpoint_step < steps

    with np.load(out / "train_losses.npz") as f:
        expected = dict(zip(range(every, steps + 1, every), window_means(f["loss"], every)))
    scalars = events(out / "tensorboard").Scalars("train/loss")  # events after the checkpoint's step purged
    assert [s.step for s in scalars] == list(expected)
    assert np.allclose([s.value for s in scalars], list(expected.values()), rtol=1e-6)
    # up to the checkpoint the killed process's events are kept; after it, the resumed process's
    assert all((s.wall_time < killed_at) == (s.step <= checkpoint_step) for s in scalars)

    client = MlflowClient(tracking_uri=f"sqlite:///{out / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("gridnoise").experiment_id])
    assert run.info.status == "FINISHED"  # the same run, reopened
    history = client.get_metric_history(run.info.run_id, "train/loss")
    # steps logged between the checkpoint and the kill come again, with the same values
    assert {m.step for m in history} == set(expected)
    assert all(m.value == pytest.approx(expected[m.step], rel=1e-6) for m in history)
    # those up to the checkpoint were logged once, by the killed process; the resumed process logged only the rest
    before = Counter(m.step for m in history if m.timestamp < killed_at * 1000)
    after = Counter(m.step for m in history if m.timestamp >= killed_at * 1000)
    assert all(before[step] == 1 for step in expected if step <= checkpoint_step)
    assert after == Counter(step for step in expected if step > checkpoint_step)


def test_a_studys_tasks_group_by_run_data_set_and_seed(tmp_path):
    from mlflow.tracking import MlflowClient

    runs = '[runs.base]\nvariant = "baseline"\n[runs.grid]\nvariant = "grid10"\n'
    experiment = study_file(tmp_path / "e.toml", "tracked", ["moons", "line"], [0], runs)
    out = tmp_path / "study"
    gridnoise("run", experiment, "--out", out, "--workers", 2, "--log", "tensorboard,mlflow", "--no-progress")
    keys = {f"{r}/{d}/seed_0" for r in ("base", "grid") for d in ("moons", "line")}
    assert {p.parent.relative_to(out).as_posix() for p in out.glob("*/*/seed_*/tensorboard")} == keys
    client = MlflowClient(tracking_uri=f"sqlite:///{out / 'mlflow.db'}")
    found = client.search_runs([client.get_experiment_by_name("tracked").experiment_id])
    assert {r.info.run_name for r in found} == keys and all(r.info.status == "FINISHED" for r in found)
    by_name = {r.info.run_name: r for r in found}
    assert by_name["grid/line/seed_0"].data.tags["run"] == "grid"
    assert by_name["grid/line/seed_0"].data.tags["dataset"] == "line"
    assert "grid_variance" in by_name["grid/line/seed_0"].data.metrics
    # trackers are not part of a task's identity: the same study without them is already finished
    proc = gridnoise("run", experiment, "--out", out, "--workers", 1, "--no-progress")
    assert "4 tasks done (4 already finished)" in proc.stdout


def test_flat_params_are_the_config_without_log():
    params = flat_params(RunConfig(variant="multiscale_l1"))
    assert params["train.lr"] == 3e-4 and params["adaptation.kind"] == "original_grid"
    assert json.loads(params["adaptation.l1"]) == {"fine": 0.01} and params["diffusion.num_timesteps"] == 100
    assert not any(k.startswith("log") for k in params)


@pytest.mark.parametrize("flag, text", [
    ("wandb", "unknown tracker 'wandb' in log.trackers (--log): choose from tensorboard, mlflow"),
    ("tensorboard,neptune", "unknown tracker 'neptune'"),
])
def test_an_unknown_tracker_is_one_line_before_anything_is_written(tmp_path, flag, text):
    proc = cli(*TRAIN, "--log", flag, "--out", tmp_path / "x")
    assert proc.returncode == 2 and text in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "x").exists()


def test_a_tracker_that_is_not_installed_says_how_to_install_it(monkeypatch):
    from gridnoise import config
    from gridnoise.errors import ConfigError

    monkeypatch.setitem(config.TRACKERS, "mlflow", "gridnoise_no_such_module")
    with pytest.raises(ConfigError, match=r'--log mlflow needs mlflow, an optional extra: pip install mlflow '
                                          r'\(in a clone of gridnoise: pip install -e "\.\[mlflow\]"\)'):
        config.check_trackers(["tensorboard", "mlflow"])


def test_an_experiment_files_log_table_changes_no_identity_or_hash():
    from gridnoise.study.experiment import parse_experiment

    def experiment(log: dict) -> dict:
        return {"experiment": {"name": "x", "datasets": ["moons"], "seeds": [0, 1]},
                "defaults": {"train": {"steps": 100}, **log},
                "runs": {"base": {"variant": "baseline"}, "grid": {"variant": "grid10", **log}}}

    plain = parse_experiment(experiment({}))
    logged = parse_experiment(experiment({"log": {"trackers": ["tensorboard"], "mlflow_experiment": "e"}}))
    assert logged.tasks()[0].config.log.trackers == ["tensorboard"]
    assert logged.identity() == plain.identity()
    assert [t.config_hash for t in logged.tasks()] == [t.config_hash for t in plain.tasks()]


def test_a_bad_mlflow_uri_is_one_line(tmp_path):
    proc = cli(*TRAIN, "--log", "mlflow", "--mlflow-uri", "nosuchscheme://x", "--out", tmp_path / "x")
    assert proc.returncode == 2 and "cannot log to MLflow at nosuchscheme://x" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
