"""Shared fixtures: the Datasaurus table from ../shared/data, never from the network."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

DATASAURUS = Path(__file__).resolve().parents[2] / "shared" / "data" / "DatasaurusDozen.tsv"
REPOSITORY = Path(__file__).resolve().parents[1]
# What git, builds, installs and runs leave in a checkout, none of it part of the package's source
# (shutil.ignore_patterns matches names: docs/_build is "_build").
LEFT_BY_WORK = (".git", ".venv", "*.egg-info", "build", "dist", "results", "runs", "__pycache__", ".pytest_cache",
                "_build", "_generated")
# The environment of a command run in a fresh venv: nothing that would point it back at this one.
CLEAN_ENV = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}


def copy_of_checkout(dest: Path) -> Path:
    """This checkout's sources copied to `dest`, without what work leaves there (no .venv, no stale
    egg-info); `dest`."""
    shutil.copytree(REPOSITORY, dest, ignore=shutil.ignore_patterns(*LEFT_BY_WORK))
    return dest


def cpu_flags() -> set[str]:
    """The instruction-set flags the kernel reports for this CPU (the `flags` line of /proc/cpuinfo;
    empty where there is none)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return set()
    return next((set(ln.split(":", 1)[1].split()) for ln in lines if ln.split(":")[0].strip() == "flags"), set())


# Whether this CPU has bf16 matrix instructions (AVX512-BF16 or AMX-BF16), as the kernel reports them:
# what `gridnoise.precision.native_bf16("cpu")` must find, and what decides the bf16 warnings and benchmarks.
HARDWARE_BF16 = bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


# The defaults table of a tiny study: every task trains in about a second.
TINY_STUDY = """[defaults]
n_points = 1000
[defaults.diffusion]
num_timesteps = 20
[defaults.train]
steps = 20
batch_size = 64
[defaults.eval]
num_samples = 200
"""


# A tiny run: trained once per test worker by `tiny_run` and shared by the tests that read it.
TINY_RUN = {"n_points": 2000, "diffusion": {"num_timesteps": 20}, "train": {"steps": 60, "batch_size": 64,
            "grid_snapshot_every": 20}, "eval": {"num_samples": 300}}


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """`tiny_run(variant, dataset="moons")`: the directory of a finished TINY_RUN of that variant,
    trained in this process the first time a test asks and shared after that. Read it, or copy it
    (shutil.copytree) before writing into it."""
    from gridnoise.api import make_config
    from gridnoise.run import train_run

    runs: dict[tuple[str, str], Path] = {}

    def trained(variant: str, dataset: str = "moons") -> Path:
        if (variant, dataset) not in runs:
            out = tmp_path_factory.mktemp(f"{variant}-{dataset}") / "run"
            train_run(make_config(variant, dataset=dataset, **TINY_RUN), out, progress=False)
            runs[variant, dataset] = out
        return runs[variant, dataset]

    return trained


def study_file(path: Path, name: str, datasets: list[str], seeds: list[int], runs: str) -> Path:
    """An experiment file of tiny tasks: `runs` is its [runs.*] tables, the first run the baseline."""
    quoted = ", ".join(f'"{d}"' for d in datasets)
    path.write_text(f'[experiment]\nname = "{name}"\ndatasets = [{quoted}]\nseeds = {list(seeds)}\n'
                    f"{TINY_STUDY}{runs}")
    return path


def gridnoise(*args, check: bool = True) -> subprocess.CompletedProcess:
    """Run the real `gridnoise` command; with `check`, a non-zero exit fails the test with its stderr."""
    proc = subprocess.run([sys.executable, "-m", "gridnoise", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}: {proc.stderr[-2000:]}")
    return proc


def cli(*args, check: bool = False) -> subprocess.CompletedProcess:
    """Run `gridnoise.cli.main` in this process, as `gridnoise(*args, check=check)` runs the command:
    its exit status and what it printed, without a fresh interpreter's 2-3 s of imports. For error paths
    and for commands a test only needs done; keep one real subprocess per command elsewhere."""
    import torch

    from gridnoise.cli import main

    out, err = io.StringIO(), io.StringIO()
    threads = torch.get_num_threads()  # `train` sets the process's threads: give this test's back
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as e:  # argparse's usage errors and --help
            code = e.code if isinstance(e.code, int) else 1
        finally:
            torch.set_num_threads(threads)
    if check and code != 0:
        raise AssertionError(f"exit {code}: {err.getvalue()[-2000:]}")
    return subprocess.CompletedProcess(["gridnoise", *map(str, args)], code, out.getvalue(), err.getvalue())


@pytest.fixture(autouse=True, scope="session")
def _one_thread_per_test_worker():
    """Under pytest-xdist each worker, and every process it starts (gridnoise commands, Dask workers,
    the notebook's kernel), computes on one thread: two workers on two cores, not four threads."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        torch.set_num_threads(1)
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"


@pytest.fixture(autouse=True)
def _datasaurus_env(monkeypatch):
    if DATASAURUS.is_file():
        monkeypatch.setenv("GRIDNOISE_DATASAURUS", str(DATASAURUS))


STUDY_SAMPLES = 200  # make_study: each task's saved samples


def make_study(root: Path, seeds=(0, 1, 2, 3, 4), steps: int = 500, datasets=("moons", "line")) -> Path:
    """A study directory written from known inputs through `gridnoise.rundir`, as a study's tasks write
    it: `good` beats the baseline on KL by 0.1 bits on every seed, `noisy` differs from it only by
    seeded noise."""
    import numpy as np

    from gridnoise import rundir
    from gridnoise.adaptation import grid_label
    from gridnoise.config import RunConfig, adaptation_for
    from gridnoise.files import write_json

    runs = [("base", "Baseline", "baseline"), ("good", "10x10 Grid", "grid10"), ("noisy", "Multi-scale", "multiscale")]
    datasets = list(datasets)
    write_json(root / rundir.EXPERIMENT_FILE, {
        "name": "synthetic", "identity": "x", "description": "known inputs", "baseline": "base",
        "runs": [{"name": n, "label": lab, "variant": v} for n, lab, v in runs],
        "datasets": datasets, "seeds": list(seeds)})
    rng = np.random.default_rng(0)
    for name, _, variant in runs:
        for dataset in datasets:
            for seed in seeds:
                d = rundir.task_dir(root, name, dataset, seed)
                cfg = RunConfig(dataset=dataset, variant=variant, adaptation=adaptation_for(variant), seed=seed)
                cfg.train.steps = steps
                cfg.eval.num_samples = STUDY_SAMPLES  # as many as it saves: what the estimator floors see
                rundir.write_config(d, cfg)
                base_kl = 0.5 + 0.01 * seed
                kl = {"base": base_kl, "good": base_kl - 0.1, "noisy": base_kl + rng.normal(0, 0.05)}[name]
                metrics = {"kl_divergence": kl, "eval_loss": 0.6 + 0.01 * seed,
                           "training_time": {"base": 10.0, "good": 15.0, "noisy": 20.0}[name] + seed,
                           "inference_time": 1.0 + 0.1 * seed}
                grids = {grid_label(g): np.ones((100, n, n)) + 0.01 * rng.normal(size=(100, n, n))
                         for g, n in cfg.adaptation.grids.items()}
                for label, g in grids.items():
                    metrics[f"{label}_variance"] = float(g.var(ddof=1))
                write_json(d / rundir.TASK_FILE, {"hash": "h", "peak_rss_mb": 300.0 + seed})
                rundir.write_losses(d, 1 + np.exp(-np.arange(steps) / 50), np.ones(steps))
                rundir.write_samples(d, rng.normal(size=(STUDY_SAMPLES, 2)))
                if grids:  # the extent the grids covered, saved with them as training saves it
                    rundir.write_grid_snapshot(d, steps, 3, grids, np.asarray(cfg.adaptation.extent, np.float32))
                if name == "base":
                    rundir.write_kl_history(d, {"step": [steps // 2, steps], "kl_divergence": [0.9, kl]})
                rundir.write_metrics(d, metrics)  # last: it marks the task finished
    return root


SLIDING_SHARE = 0.1  # write_evaluations: share of `good`'s points whose flow slides, on every seed but the first


def write_evaluations(root: Path) -> Path:
    """`evaluation.json` for every finished task of a `make_study` study, as `gridnoise evaluate` writes
    it: `base` has a bound and an ODE likelihood; `good`'s flow slides along cell edges on every seed
    but the first (so it has no ODE likelihood); `noisy` has an ODE likelihood but no bound."""
    from gridnoise import rundir
    from gridnoise.files import write_json

    for d in sorted(root.glob("*/*/seed_*")):
        if not (d / rundir.METRICS_FILE).is_file():
            continue
        run, seed = d.parent.parent.name, int(d.name.split("_")[1])
        record: dict = {"nll_ode_nontransversal": 0.0}
        if run in ("base", "good"):
            record["nll_elbo"] = 3.0 + 0.01 * seed - (0.2 if run == "good" else 0.0)
        if run == "good" and seed != 0:
            record.update(nll_ode_nontransversal=SLIDING_SHARE,
                          nll_ode_skipped=f"original_grid: the flow slides along a cell edge for {SLIDING_SHARE:.0%}")
        else:
            record["nll_ode"] = 1.5 + 0.01 * seed + (0.02 * (-1) ** seed if run == "noisy" else 0.0)
        write_json(d / rundir.EVALUATION_FILE, record)
    return root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dask_bin(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


@contextlib.contextmanager
def loopback_cluster(workers: int = 1, env: dict | None = None):
    """A real `dask scheduler` and `workers` single-threaded `dask worker` processes on 127.0.0.1,
    the workers started with `env` (default: this process's environment); yields the scheduler's
    address and the processes."""
    from distributed import Client

    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs = [subprocess.Popen([dask_bin("dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                               "--dashboard-address", ":0", "--no-show"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        time.sleep(2)
        for _ in range(workers):
            procs.append(subprocess.Popen([dask_bin("dask"), "worker", address, "--nthreads", "1", "--no-nanny",
                                           "--host", "127.0.0.1", "--no-dashboard"],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                          env=env if env is not None else {**os.environ}))
        with Client(address, timeout="30s") as client:
            client.wait_for_workers(workers, timeout=60)
        yield address, procs
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:  # a worker may linger while it retries its vanished scheduler
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


SLURM_MISSING = ("no running Slurm: `bash scripts/slurm.sh install && bash scripts/slurm.sh start` as root, then "
                 "`eval \"$(bash scripts/slurm.sh env)\"` (scripts/test.sh does all three)")


@pytest.fixture(scope="session")
def slurm():
    """The single-node Slurm that scripts/test.sh starts (scripts/slurm.sh): skips the test without
    one, fails it where GRIDNOISE_REQUIRE_SLURM is set (as in CI). Yields the `[cluster]` settings of
    jobs whose workers and scheduler talk over loopback."""
    import shutil

    up = shutil.which("sbatch") is not None and subprocess.run(
        ["sinfo", "-h", "-o", "%T"], capture_output=True, text=True).stdout.strip() in ("idle", "mixed", "allocated")
    if not up:
        if os.environ.get("GRIDNOISE_REQUIRE_SLURM"):
            pytest.fail(SLURM_MISSING)
        pytest.skip(SLURM_MISSING)
    return {"interface": "lo", "cores": 1, "memory": "1GB", "walltime": "00:20:00", "start_timeout": 120}


def slurm_jobs(name: str | None = None) -> list[str]:
    """The ids of the Slurm jobs pending or running (those of that job name)."""
    done = subprocess.run(["squeue", "-h", "-o", "%i", *(["-n", name] if name else [])], capture_output=True,
                          text=True, check=True)
    return done.stdout.split()


CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
INSTALL = ("headless Chromium is not installed: as root, `apt-get update && apt-get install -y chromium "
           "chromium-driver` (Debian's packages; scripts/install_browser.sh, which scripts/test.sh runs)")
CHROME_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync")
LOAD_TIMEOUT = 60  # seconds for a page and its plots on a busy machine


@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    """One real headless Chromium (Debian's, driven by Selenium) for every page a test worker opens:
    report.html and the documentation site. Skipped where it is not installed, failed where
    GRIDNOISE_REQUIRE_BROWSER says it must be."""
    if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
        if os.environ.get("GRIDNOISE_REQUIRE_BROWSER"):  # scripts/test.sh (and so CI) installed it
            pytest.fail(INSTALL)
        pytest.skip(INSTALL)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROME_FLAGS + (f"--user-data-dir={tmp_path_factory.mktemp('chrome')}",):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)  # never selenium-manager
    driver.set_script_timeout(LOAD_TIMEOUT)
    yield driver
    driver.quit()
