"""The study executor on real Dask: an embedded local cluster (remote ones: tests/study/test_cluster.py)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from gridnoise import rundir
from gridnoise.errors import ClusterError, OutputExistsError
from gridnoise.study.cluster import Cluster
from gridnoise.study.executor import run_tasks
from gridnoise.study.experiment import load_experiment
from gridnoise.study.results import load_results, write_summaries

from conftest import HARDWARE_BF16, cli, free_port

EXPERIMENT = """
[experiment]
name = "tiny"
datasets = ["moons", "line"]
seeds = [0, 1]
baseline = "base"

[defaults]
n_points = 2000
[defaults.diffusion]
num_timesteps = 10
[defaults.train]
steps = {steps}
batch_size = 64
checkpoint_every = 20
grid_snapshot_every = 20
log_every = 10
[defaults.eval]
num_samples = 200
kl_every = 20
kl_every_samples = 100

[runs.base]
label = "Baseline"
variant = "baseline"

[runs.grid]
label = "10x10 Grid"
variant = "grid10"
"""

SWEEP_METRICS = ("eval_loss", "kl_divergence")


def write_experiment(tmp_path, steps=40) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(EXPERIMENT.replace("{steps}", str(steps)))
    return path


def numbers(out: Path) -> dict:
    res = load_results(out)
    return {key: {k: m[k] for k in SWEEP_METRICS} for key, m in res.metrics.items()}


def test_local_cluster_runs_skips_and_summarises(tmp_path):
    exp = load_experiment(write_experiment(tmp_path))
    out = tmp_path / "study"
    outcome = run_tasks(exp, out, cluster=Cluster(workers=2), progress=False)
    assert not outcome.failed and len(outcome.done) == 8 and not outcome.skipped
    first = numbers(out)
    assert len(first) == 8
    task = json.loads((out / "grid/line/seed_1/task.json").read_text())
    assert task["peak_rss_mb"] > 0 and len(task["hash"]) == 16
    # where its wall time went: the time beyond training and evaluation is what is left of it
    assert task["training_time"] > 0 and task["evaluation_time"] > 0 and task["figures_time"] > 0
    assert task["overhead_time"] == pytest.approx(task["wall_time"] - task["training_time"] - task["evaluation_time"])
    assert 0 < task["overhead_share"] < 1
    assert (out / "grid/line/seed_1/grids").is_dir() and not (out / "grid/line/seed_1/heatmaps").exists()

    # Re-running skips every finished task (nothing retrained, files untouched).
    stamp = (out / "grid/line/seed_1/metrics.json").stat().st_mtime_ns
    again = run_tasks(exp, out, cluster=Cluster(workers=2), progress=False)
    assert len(again.skipped) == 8 and (out / "grid/line/seed_1/metrics.json").stat().st_mtime_ns == stamp

    results = load_results(out)
    write_summaries(results)
    info = json.loads((out / "grid" / "final_info.json").read_text())
    assert set(info) == {"moons", "line"}
    for dataset, entry in info.items():
        kls = [first[("grid", dataset, s)]["kl_divergence"] for s in (0, 1)]
        assert entry["means"]["kl_divergence"] == pytest.approx(np.mean(kls))
        assert entry["stds"]["kl_divergence"] == pytest.approx(np.std(kls, ddof=1))
        assert entry["n_seeds"] == 2 and "grid_variance" in entry["means"]
    rows = (out / "results.csv").read_text().splitlines()
    assert rows[0] == "run,label,variant,dataset,seed,metric,value"
    # baseline: the seed's 4 metrics + 5 sample metrics + abar_T; grid: one grid variance more
    assert len(rows) == 1 + 4 * 10 + 4 * 11


def test_more_seeds_extend_and_other_experiments_are_refused(tmp_path):
    path = write_experiment(tmp_path, steps=20)
    exp = load_experiment(path)
    out = tmp_path / "study"
    run_tasks(exp.restricted(seeds=[0], datasets=["moons"]), out, cluster=Cluster(workers=1), progress=False)
    grown = run_tasks(exp.restricted(seeds=[0, 1], datasets=["moons"]), out, cluster=Cluster(workers=1), progress=False)
    assert len(grown.skipped) == 2 and len(grown.done) == 4
    assert json.loads((out / "experiment.json").read_text())["seeds"] == [0, 1]
    with pytest.raises(OutputExistsError, match="another experiment"):
        run_tasks(exp.restricted(steps=21), out, cluster=Cluster(workers=1), progress=False)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("keep me")
    with pytest.raises(OutputExistsError, match="not a gridnoise study"):
        run_tasks(exp, foreign, cluster=Cluster(workers=1), progress=False)
    assert (foreign / "thesis.tex").read_text() == "keep me"


def test_failed_task_is_reported_while_others_finish(tmp_path, monkeypatch):
    # dino cannot load without its table: that task fails, the moons tasks complete.
    monkeypatch.setenv("GRIDNOISE_DATASAURUS", str(tmp_path / "missing.tsv"))
    exp = load_experiment(write_experiment(tmp_path, steps=20)).restricted(datasets=["moons", "dino"], seeds=[0])
    outcome = run_tasks(exp, tmp_path / "study", cluster=Cluster(workers=2), progress=False)
    assert sorted(outcome.failed) == ["base/dino/seed_0", "grid/dino/seed_0"]
    assert "Datasaurus" in outcome.failed["base/dino/seed_0"]
    assert sorted(outcome.done) == ["base/moons/seed_0", "grid/moons/seed_0"]


def test_unreachable_scheduler(tmp_path):
    exp = load_experiment(write_experiment(tmp_path, steps=20))
    with pytest.raises(ClusterError, match="cannot reach the Dask scheduler"):
        run_tasks(exp, tmp_path / "study", Cluster(address=f"tcp://127.0.0.1:{free_port()}", connect_timeout=1),
                  progress=False)


@pytest.mark.slow
def test_killed_sweep_resumes_to_the_same_numbers(tmp_path):
    steps = 600
    path = write_experiment(tmp_path, steps=steps)
    args = [sys.executable, "-m", "gridnoise", "run", str(path), "--workers", "2", "--no-progress",
            "--datasets", "moons", "--seeds", "0"]
    # the uninterrupted sweep and the resuming one in this process; the one killed is a real command
    assert cli(*args[3:], "--out", tmp_path / "full").returncode == 0

    out = tmp_path / "killed"
    proc = subprocess.Popen([*args, "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 180
    while time.time() < deadline and proc.poll() is None:
        if list(out.glob("*/moons/seed_0/checkpoint.pt")):
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the command, its cluster and its workers
    proc.wait()
    tasks = [out / run / "moons/seed_0" for run in ("base", "grid")]
    assert not any((d / "metrics.json").exists() for d in tasks), "a task finished before the kill"
    checkpoints = {d: int(rundir.load_checkpoint(d / "checkpoint.pt")["step"]) if (d / "checkpoint.pt").exists()
                   else 0 for d in tasks}
    assert any(0 < step < steps for step in checkpoints.values()), "the sweep was killed before any checkpoint"
    done = cli(*args[3:], "--out", out)
    assert done.returncode == 0, done.stderr
    # each task's last session started from its checkpoint (0 without one) and trained only the rest
    for d, step in checkpoints.items():
        last = rundir.read_segments(d)[-1]
        assert (last["start_step"], last["end_step"]) == (step, steps), d
    assert numbers(out) == numbers(tmp_path / "full")
    for run in ("base", "grid"):
        with np.load(out / run / "moons/seed_0/samples.npz") as a, \
                np.load(tmp_path / "full" / run / "moons/seed_0/samples.npz") as b:
            assert np.array_equal(a["samples"], b["samples"])


def test_a_bf16_study_says_once_where_bf16_is_emulated(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "gridnoise", "run", str(write_experiment(tmp_path, steps=5)),
                           "--workers", "1", "--no-progress", "--datasets", "moons", "--seeds", "0",
                           "--precision", "bf16", "--out", str(tmp_path / "study")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    warnings = [ln for ln in proc.stderr.splitlines() if ln.startswith("gridnoise: warning:")]
    assert len(warnings) == (0 if HARDWARE_BF16 else 1), proc.stderr
    assert len(load_results(tmp_path / "study").metrics) == 2  # a warning, not an error: the study ran


FAULTS_SCRIPT = """
import resource, sys, threading, torch
from gridnoise.study.executor import keep_freed_memory
from gridnoise.model import MLPDenoiser
if sys.argv[1] == "keep":
    assert keep_freed_memory()
torch.set_num_threads(1)
model = MLPDenoiser()
def steps(out):
    for _ in range(5):
        model(torch.randn(256, 2), torch.randint(0, 100, (256,))).square().mean().backward()
    before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
    for _ in range(20):
        model(torch.randn(256, 2), torch.randint(0, 100, (256,))).square().mean().backward()
    out.append(resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before)
out = []
worker = threading.Thread(target=steps, args=(out,))  # Dask runs tasks in a thread, too
worker.start(); worker.join()
print(out[0])
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc tuning")
def test_workers_keep_freed_memory_instead_of_faulting_it_back_in():
    # Dask's nanny sets MALLOC_TRIM_THRESHOLD_=65536 for its workers; without the fix every
    # step's activations are unmapped and faulted back in.
    env = {**os.environ, "MALLOC_TRIM_THRESHOLD_": "65536"}
    faults = {mode: int(subprocess.run([sys.executable, "-c", FAULTS_SCRIPT, mode], env=env, check=True,
                                       capture_output=True, text=True).stdout.split()[-1])
              for mode in ("dask", "keep")}
    assert faults["dask"] > 20 * 100  # hundreds of page faults per step
    assert faults["keep"] < faults["dask"] / 20


def test_progress_counts_only_tasks_a_thread_is_running():
    # Dask hands a worker more tasks than it has threads; the display must not count the queued ones.
    from distributed import Client, LocalCluster

    from gridnoise.study.executor import SweepProgress

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        futures = [client.submit(time.sleep, 1.0, pure=False) for _ in range(4)]
        deadline = time.time() + 10
        while sum(map(len, client.processing().values())) < 2 and time.time() < deadline:
            time.sleep(0.05)
        assert sum(map(len, client.processing().values())) >= 2  # more assigned than threads
        display = SweepProgress(4, 0, client, enabled=False)
        assert display.running() == 1
        display.close()
        client.cancel(futures)
