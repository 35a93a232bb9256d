"""End-to-end: the `gridnoise` command on real files, real training at small step counts."""

import json
import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from gridnoise.cli import main

from conftest import HARDWARE_BF16, cli, gridnoise

TINY = """
n_points = 3000
[diffusion]
num_timesteps = 20
[train]
batch_size = 64
checkpoint_every = {ck}
grid_snapshot_every = 20
log_every = 10
[eval]
num_samples = 500
"""


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY.format(ck=20))
    return path


def assert_one_line_error(proc, code, text):
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("gridnoise: error:") and text in lines[0], proc.stderr


def test_train_writes_every_result_with_the_seeds_names(tiny, tmp_path):
    out = tmp_path / "run"
    proc = gridnoise("train", "--config", tiny, "--dataset", "moons", "--variant", "multiscale_l1", "--steps", 60,
                     "--seed", 0, "--out", out, "--no-progress")
    assert "gridnoise: warning" not in proc.stderr  # fp32 runs natively everywhere
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"training_time", "eval_loss", "inference_time", "kl_divergence",
                            "coarse_grid_variance", "fine_grid_variance", "w2", "sliced_w2", "mmd", "precision",
                            "recall", "abar_T"}
    assert all(np.isfinite(v) for v in metrics.values())
    with np.load(out / "train_losses.npz") as f:
        assert f["loss"].shape == (60,) and np.isfinite(f["loss"]).all()
    with np.load(out / "samples.npz") as f:
        assert f["samples"].shape == (500, 2)
    for step in (20, 40, 60):
        with np.load(out / "grids" / f"grids_step_{step}.npz") as f:
            assert f["coarse_grid"].shape == (20, 5, 5) and f["fine_grid"].shape == (20, 20, 20)
    assert (out / "checkpoint.pt").is_file() and (out / "config.toml").is_file()
    assert not (out / "heatmaps").exists()  # drawn on demand, from the snapshots:
    assert main(["plot", str(out)]) == 0
    for step in (20, 40, 60):
        for grid in ("coarse", "fine"):
            assert (out / "heatmaps" / f"moons_{grid}_grid_step_{step}.png").stat().st_size > 1000

    # `gridnoise sample` with the run's seed redraws exactly the run's samples.
    again = tmp_path / "again.npz"
    gridnoise("sample", out, "-n", 500, "--seed", 0, "--out", again)
    with np.load(again) as a, np.load(out / "samples.npz") as b:
        assert np.array_equal(a["samples"], b["samples"])
    other = tmp_path / "other.npz"
    cli("sample", out, "-n", 50, "--seed", 1, "--out", other, check=True)
    with np.load(other) as a:
        assert a["samples"].shape == (50, 2)
    assert_one_line_error(cli("sample", out, "--out", other), 2, "exists")


def test_bf16_run_records_its_precision(tiny, tmp_path):
    out = tmp_path / "bf16"
    proc = gridnoise("train", "--config", tiny, "--variant", "multiscale", "--precision", "bf16", "--steps", "40",
                     "--out", out, "--no-progress")  # a fresh process: its one warning is printed once per process
    assert 'precision = "bf16"' in (out / "config.toml").read_text()
    # bf16 without hardware support is emulated and slow: the run goes on, with one line saying so
    warnings = [ln for ln in proc.stderr.splitlines() if ln.startswith("gridnoise: warning:")]
    assert len(warnings) == (0 if HARDWARE_BF16 else 1), proc.stderr
    assert all("--precision fp32" in ln for ln in warnings)
    metrics = json.loads((out / "metrics.json").read_text())
    assert math.isfinite(metrics["kl_divergence"]) and math.isfinite(metrics["eval_loss"])
    # Sampling again from the checkpoint runs at the run's precision and redraws the same points.
    cli("sample", out, "--seed", "0", "-n", "500", "--out", tmp_path / "again.npz", check=True)
    with np.load(out / "samples.npz") as a, np.load(tmp_path / "again.npz") as b:
        assert np.array_equal(a["samples"], b["samples"])


@pytest.mark.parametrize("variant, metric, figure", [("baseline", None, None),
                                                     ("grid10", "grid_variance", "line_grid_step_20.png")])
def test_single_grid_and_baseline_outputs(tiny, tmp_path, variant, metric, figure):
    out = tmp_path / variant
    cli("train", "--config", tiny, "--dataset", "line", "--variant", variant, "--steps", 20, "--out", out,
        "--no-progress", check=True)
    metrics = json.loads((out / "metrics.json").read_text())
    assert ("grid_variance" in metrics) == (metric is not None)
    assert "coarse_grid_variance" not in metrics
    assert not (out / "heatmaps").exists()  # drawn on demand
    if figure:
        assert main(["plot", str(out)]) == 0 and (out / "heatmaps" / figure).is_file()
    else:
        assert not (out / "grids").exists()


def test_killed_run_resumes_to_the_same_numbers(tmp_path):
    from gridnoise import rundir

    config = tmp_path / "c.toml"
    # it looks at checkpoints, not at grid snapshots: three, not one every 20 of its 1500 steps
    config.write_text(TINY.format(ck=100).replace("grid_snapshot_every = 20", "grid_snapshot_every = 500"))
    steps = 1500
    args = ["train", "--config", config, "--dataset", "circle", "--variant", "grid20", "--steps", steps,
            "--no-progress"]
    cli(*args, "--out", tmp_path / "full", check=True)

    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "gridnoise", *map(str, args), "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (out / "checkpoint.pt").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (out / "checkpoint.pt").exists() and not (out / "metrics.json").exists(), \
        "the run failed, or finished before it could be killed"
    checkpoint_step = int(rundir.load_checkpoint(out / "checkpoint.pt")["step"])
    assert 0 < checkpoint_step < steps and checkpoint_step % 100 == 0
    cli(*args, "--out", out, "--resume", check=True)

    # The resumed process started from the checkpoint's step and trained only the steps after it.
    killed, resumed_session = rundir.read_segments(out)
    assert killed["start_step"] == 0 and "end_step" not in killed and killed["pid"] == proc.pid
    assert resumed_session["start_step"] == checkpoint_step and resumed_session["end_step"] == steps
    assert resumed_session["pid"] != proc.pid
    # ... and ended with the uninterrupted run's numbers.
    full = json.loads((tmp_path / "full" / "metrics.json").read_text())
    resumed = json.loads((out / "metrics.json").read_text())
    for key in ("eval_loss", "kl_divergence", "grid_variance"):
        assert full[key] == resumed[key], key
    for name, key in (("samples.npz", "samples"), ("train_losses.npz", "loss")):
        with np.load(tmp_path / "full" / name) as a, np.load(out / name) as b:
            assert np.array_equal(a[key], b[key])
    # Resuming a finished run changes nothing and trains nothing.
    before = {name: (out / name).read_bytes() for name in ("metrics.json", rundir.SEGMENTS_FILE)}
    cli(*args, "--out", out, "--resume", check=True)
    assert {name: (out / name).read_bytes() for name in before} == before


@pytest.mark.parametrize("args, text", [
    (["--dataset", "spiral"], "unknown data set 'spiral'"),
    (["--variant", "grid99"], "invalid choice: 'grid99' (choose from 'baseline', 'grid10'"),
    (["--steps", "0"], "steps must be >= 1"),
    (["--timesteps", "1"], "T must be >= 2"),
    (["--config", "/nonexistent/x.toml"], "config file not found"),
    (["--steps", "abc"], "invalid int value"),
    (["--precision", "fp16"], "invalid choice: 'fp16' (choose from 'fp32', 'bf16')"),
    (["--grid-extent", "1", "-1", "0", "1", "--variant", "grid10"], "is empty"),
    (["--device", "cuda:7"] if not __import__("torch").cuda.is_available() else ["--device", "tpu"], "device"),
])
def test_bad_input_is_one_line_exit_2(tmp_path, args, text):
    proc = cli("train", "--out", tmp_path / "x", *args)
    assert_one_line_error(proc, 2, text)
    assert not (tmp_path / "x").exists()


def test_grid_size_zero_in_config(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[adaptation]\nkind = "seed_grid"\ngrids = { grid = 0 }\n')
    assert_one_line_error(cli("train", "--config", cfg, "--out", tmp_path / "x"), 2,
                          "grid sizes must be >= 1")


def test_existing_results_are_never_clobbered(tiny, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    proc = cli("train", "--config", tiny, "--steps", 5, "--out", out)
    assert_one_line_error(proc, 2, "not empty")
    proc = cli("train", "--config", tiny, "--steps", 5, "--out", out, "--overwrite")
    assert_one_line_error(proc, 2, "did not write")
    assert (out / "notes.txt").read_text() == "mine" and len(list(out.iterdir())) == 1

    run = tmp_path / "run2"
    cli("train", "--config", tiny, "--steps", 5, "--out", run, "--no-progress", check=True)
    metrics = (run / "metrics.json").read_bytes()
    proc = cli("train", "--config", tiny, "--steps", 7, "--out", run, "--resume")
    assert_one_line_error(proc, 2, "different config")
    assert (run / "metrics.json").read_bytes() == metrics
    cli("train", "--config", tiny, "--steps", 7, "--out", run, "--overwrite", "--no-progress", check=True)
    assert (run / "metrics.json").read_bytes() != metrics


def test_corrupt_checkpoint_and_unknown_run_dir(tiny, tmp_path):
    run = tmp_path / "run"
    cli("train", "--config", tiny, "--steps", 5, "--out", run, "--no-progress", check=True)
    data = (run / "checkpoint.pt").read_bytes()
    (run / "checkpoint.pt").write_bytes(data[: len(data) // 2])
    assert_one_line_error(cli("sample", run, "--out", tmp_path / "s.npz"), 2, "corrupt")
    assert_one_line_error(cli("sample", tmp_path, "--out", tmp_path / "s.npz"), 2, "not found")
    assert not (tmp_path / "s.npz").exists()


def test_diverged_run_exits_1_and_keeps_its_last_good_checkpoint(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(TINY.format(ck=1).replace("log_every = 10", "log_every = 1")
                   .replace("[train]\n", "[train]\nlr = 1e30\n"))
    out = tmp_path / "run"
    proc = cli("train", "--config", cfg, "--steps", 200, "--out", out, "--no-progress")
    assert_one_line_error(proc, 1, "diverged")
    assert (out / "config.toml").is_file() and not (out / "metrics.json").exists()
    import torch

    state = torch.load(out / "checkpoint.pt", weights_only=True)  # step 1's weights are huge but finite
    assert int(state["step"]) >= 1 and all(torch.isfinite(v).all() for v in state["model"].values())


def test_missing_datasaurus_is_one_line(tmp_path):
    env = {**os.environ, "GRIDNOISE_DATASAURUS": str(tmp_path / "nope.tsv")}
    proc = subprocess.run([sys.executable, "-m", "gridnoise", "train", "--dataset", "dino", "--steps", "2",
                           "--out", str(tmp_path / "x")], capture_output=True, text=True, env=env)
    assert_one_line_error(proc, 2, "GRIDNOISE_DATASAURUS")


def test_report_without_the_datasaurus_table_writes_nothing(tmp_path):
    from conftest import make_study

    study = make_study(tmp_path / "s", seeds=(0, 1), datasets=("dino",))
    env = {**os.environ, "GRIDNOISE_DATASAURUS": str(tmp_path / "nope.tsv")}
    proc = subprocess.run([sys.executable, "-m", "gridnoise", "report", str(study), "--dest", str(tmp_path / "docs")],
                          capture_output=True, text=True, env=env)
    assert_one_line_error(proc, 2, "GRIDNOISE_DATASAURUS")
    assert not (tmp_path / "docs").exists() and not list(study.glob("*.png")) and not (study / "results.csv").exists()


def test_study_commands_bad_input(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[experiment]\nname = "x"\n[runs.a]\nvariant = "baseline"\nsteps = 3\n')
    assert_one_line_error(cli("run", bad, "--out", tmp_path / "o"), 2, "unknown key")
    assert_one_line_error(cli("run", tmp_path / "none.toml", "--out", tmp_path / "o"), 2,
                          "not found")
    assert_one_line_error(cli("reproduce", "--out", tmp_path / "o", "--datasets", "mars"), 2,
                          "unknown data set")
    assert_one_line_error(cli("reproduce", "--out", tmp_path / "o", "--steps", "2",
                                    "--scheduler", "tcp://127.0.0.1:9", "--connect-timeout", "1"), 2,
                          "cannot reach")
    assert_one_line_error(cli("report", tmp_path), 2, "experiment.json")
    assert_one_line_error(cli("bench", "--repeats", "0", "--json", tmp_path / "b.json"), 2,
                          "and --repeats must be >= 1")
    assert not (tmp_path / "b.json").exists()
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").rglob("metrics.json"))


def test_plot_and_report_rebuild_from_saved_results(tmp_path):
    from gridnoise import rundir

    from conftest import make_study

    study = make_study(tmp_path / "s", seeds=(0, 1), datasets=("moons",))
    gridnoise("plot", study)
    assert (study / "evaluation_metrics.png").is_file() and not (study / "report.md").exists()
    gridnoise("report", study, "--dest", tmp_path / "docs")
    report = (tmp_path / "docs" / "report.md").read_text()
    assert "![train_loss](train_loss.png)" in report and (tmp_path / "docs" / "final_grids").is_dir()
    assert (tmp_path / "docs" / "report.html").is_file() and not (study / "report.html").exists()
    assert (study / "base" / "final_info.json").is_file() and (study / "results.csv").is_file()
    # A second study of the same runs and seeds: its baseline's KL 0.05 higher and its grid run's 0.02 lower
    # on every seed, its multi-scale run unchanged.
    other = make_study(tmp_path / "other", seeds=(0, 1), datasets=("moons",))
    for run, shift in (("base", 0.05), ("good", -0.02)):
        for d in other.glob(f"{run}/*/seed_*"):
            metrics = rundir.read_metrics(d)
            rundir.write_metrics(d, {**metrics, "kl_divergence": metrics["kl_divergence"] + shift})
    compared = gridnoise("compare", study, other).stdout
    table = [[c.strip() for c in ln.split("|")[1:-1]] for ln in compared.splitlines() if ln.startswith("| ")]
    rows = {(cells[0].split()[0], cells[1]): cells[2:] for cells in table[1:] if not cells[0].startswith("-")}
    assert set(rows) == {(run, "moons") for run in ("base", "good", "noisy")}
    # seeds 0 and 1 of the baseline: KL 0.50 and 0.51 in the first study, 0.55 and 0.56 in the second
    first, second, difference = rows[("base", "moons")][:3]
    assert first.startswith("0.505 [") and second.startswith("0.555 [") and difference == "0.050 [0.050, 0.050]"
    assert rows[("good", "moons")][2] == "-0.020 [-0.020, -0.020]"
    assert rows[("noisy", "moons")][2].startswith("0.000 ")
    bad = cli("compare", study, tmp_path / "nowhere")
    assert_one_line_error(bad, 2, "nowhere")


def test_datasets_lists_every_data_set_and_draws_them(tmp_path):
    from gridnoise.data import DATASETS

    out = gridnoise("datasets", "--plot", tmp_path / "all.png", "-n", 300).stdout
    assert [line.split()[0] for line in out.splitlines()[:len(DATASETS)]] == list(DATASETS)
    assert (tmp_path / "all.png").read_bytes()[:4] == b"\x89PNG"
    assert_one_line_error(cli("datasets", "--plot", tmp_path / "all.pdf"), 2, ".png")
    assert not (tmp_path / "all.pdf").exists()


def test_version_choices_and_defaults_in_every_help():
    from gridnoise import __version__
    from gridnoise.cli import RUN_FLAGS

    assert gridnoise("--version").stdout.strip() == f"gridnoise {__version__}"
    text = " ".join(cli("train", "--help", check=True).stdout.split())
    for flag, (_, _, choices, _) in RUN_FLAGS.items():
        assert flag in text
        if choices:
            assert "{" + ",".join(choices) + "}" in text  # the choices are listed
    assert "(default: 0.0003)" in text and "(default: 10000)" in text and "(default: moons)" in text
    sample = " ".join(cli("sample", "--help", check=True).stdout.split())
    assert "(default: 10000)" in sample and "{ddpm,ddim,cell}" in sample and "the run's own" in sample
    assert "(default: 3)" in " ".join(cli("bench", "--help", check=True).stdout.split())


def test_set_reaches_any_setting_and_config_show_prints_the_resolved_config(tiny, tmp_path):
    import tomllib

    from gridnoise.config import RunConfig, adaptation_for, from_dict

    shown = gridnoise("config", "show", "--variant", "multiscale_l1", "--set", "train.ema_decay=0.9",
                      "--set", "adaptation.l1={fine=0.5}", "--set", "eval.extra_samplers.d5={sampler='ddim', steps=5}")
    cfg = from_dict(RunConfig, tomllib.loads(shown.stdout))
    assert cfg.adaptation.grids == adaptation_for("multiscale_l1").grids and cfg.adaptation.l1 == {"fine": 0.5}
    assert cfg.train.ema_decay == 0.9 and cfg.eval.extra_samplers["d5"].steps == 5
    out = tmp_path / "run"
    cli("train", "--config", tiny, "--steps", 20, "--set", "train.ema_warmup_steps=3", "--set",
        "model.hidden_dim=32", "--threads", 1, "--out", out, "--no-progress", check=True)
    saved = tomllib.loads((out / "config.toml").read_text())
    assert saved["train"]["ema_warmup_steps"] == 3 and saved["model"]["hidden_dim"] == 32
    for bad, text in [("train.nope=1", "unknown key"), ("train.lr=fast", "must be float"), ("lr", "section.key=value"),
                      ("train.lr=nan", "not a finite number"), ("model.embedding_dim=7", "even")]:
        assert_one_line_error(cli("train", "--set", bad, "--out", tmp_path / "x"), 2, text)
    assert_one_line_error(cli("train", "--threads", 0, "--out", tmp_path / "x"), 2, "--threads")
    assert not (tmp_path / "x").exists()


def test_sample_defaults_to_the_runs_seed_and_refuses_other_formats(tiny, tmp_path):
    out = tmp_path / "run"
    cli("train", "--config", tiny, "--steps", 20, "--seed", 7, "--out", out, "--no-progress", check=True)
    cli("sample", out, "-n", 500, "--out", tmp_path / "again.npz", check=True)  # num_samples of the tiny config
    with np.load(out / "samples.npz") as a, np.load(tmp_path / "again.npz") as b:
        assert np.array_equal(a["samples"], b["samples"])  # the run's own seed redraws its samples
    assert_one_line_error(cli("sample", out, "--out", tmp_path / "s.csv"), 2, ".npz")
    assert_one_line_error(cli("animate", out, "--out", tmp_path / "a.mp4"), 2, ".gif")
    assert not (tmp_path / "s.csv").exists() and not (tmp_path / "a.mp4").exists()


def test_study_commands_take_set_for_every_run(tmp_path):
    assert_one_line_error(cli("reproduce", "--out", tmp_path / "s", "--set", "train.nope=1"), 2,
                          "unknown key")
    assert_one_line_error(cli("reproduce", "--out", tmp_path / "s", "--set", "train.lr=-1"), 2,
                          "train.lr must be > 0")
    assert not (tmp_path / "s").exists()
