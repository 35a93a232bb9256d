"""Where tasks run: the [cluster] table and its flags, the Slurm job script, and studies, evaluations
and errors on a real single-node Slurm (scripts/slurm.sh) and on a Dask cluster started by the
documented sbatch recipe (examples/slurm/dask-cluster.sbatch, which docs/how-to/slurm.md shows: tests/docs
checks that it shows it as it is)."""

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import dask
import dask_jobqueue  # noqa: F401  (its configuration's defaults, before any dask.config.set)
import pytest

from gridnoise import rundir
from gridnoise.errors import ConfigError
from gridnoise.study.cluster import (
    Cluster,
    SlurmSettings,
    job_script,
    slurm_seconds,
    task_device,
    task_resources,
    worker_lifetime,
)
from gridnoise.study.executor import run_tasks
from gridnoise.study.experiment import load_experiment

from conftest import cli, slurm_jobs

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "examples" / "slurm" / "dask-cluster.sbatch"

EXPERIMENT = """[experiment]
name = "tiny_cluster"
datasets = ["moons"]
seeds = [0, 1]

[defaults]
n_points = 1000
[defaults.diffusion]
num_timesteps = 20
[defaults.model]
hidden_dim = 32
hidden_layers = 1
embedding_dim = 16
[defaults.train]
steps = 1500
batch_size = 64
checkpoint_every = 20
[defaults.eval]
num_samples = 200

[runs.base]
variant = "baseline"
"""
JOB_NAME = "gridnoise-test-cluster"
NUMBERS = ("eval_loss", "kl_divergence", "w2", "mmd")


def write_experiment(directory: Path, cluster: dict | None = None, steps: int = 1500) -> Path:
    """The tiny experiment, with a [cluster] table of `cluster` (job logs under `directory`)."""
    table = {"log_directory": str(directory / "slurm-logs"), **(cluster or {})}
    lines = ["[cluster]"] + [f"{k} = {json.dumps(v) if not isinstance(v, dict) else _inline(v)}"
                             for k, v in table.items()]
    path = directory / "tiny.toml"
    path.write_text(EXPERIMENT.replace("steps = 1500", f"steps = {steps}") + "\n" + "\n".join(lines) + "\n")
    return path


def _inline(table: dict) -> str:
    return "{" + ", ".join(f"{k} = {json.dumps(v)}" for k, v in table.items()) + "}"


def numbers(study: Path) -> dict:
    """Every finished task's metrics that do not measure time: what must not depend on where it ran."""
    return {str(p.parent.relative_to(study)): {k: json.loads(p.read_text())[k] for k in NUMBERS}
            for p in sorted(study.glob("*/*/seed_*/metrics.json"))}


def files(directory: Path) -> dict:
    return {p: p.stat().st_mtime_ns for p in directory.rglob("*") if p.is_file()}


# ---- settings, without Slurm ---------------------------------------------------------------------


def test_slurm_time_limits_in_every_format():
    # sbatch(1) --time: minutes, minutes:seconds, hours:minutes:seconds, days-hours[:minutes[:seconds]]
    cases = {"30": 1800, "5:30": 330, "02:00:00": 7200, "1-0": 86400, "1-02:30": 95400, "2-00:00:10": 172810}
    assert {text: slurm_seconds(text) for text in cases} == cases
    for bad in ("2h", "", "1:2:3:4", "-5"):
        with pytest.raises(ConfigError, match="Slurm time limit"):
            slurm_seconds(bad)


@pytest.mark.parametrize("walltime, lifetime, stagger", [(60, 30, 10), (600, 540, 20), (1800, 1620, 60),
                                                      (7200, 6600, 200), (86400, 85800, 200)])
def test_workers_retire_before_the_walltime(walltime, lifetime, stagger):
    # the margin before the walltime: a tenth of it, between 1 and 10 minutes, at most half; +- a third
    assert worker_lifetime(walltime) == (lifetime, stagger)
    assert 0 < lifetime - stagger and lifetime + stagger < walltime


def test_cluster_table_errors_name_the_setting(tmp_path):
    cases = [({"partition": "cpu"}, "unknown key(s) ['partition'] in [cluster]"),
             ({"cores": "four"}, "cores must be an integer"),
             ({"cores": 0}, "cores must be >= 1"),
             ({"gpus": 2}, "gpus must be 0 or 1"),
             ({"gpus": 1, "processes": 2}, "one worker process"),
             ({"walltime": "2h"}, "Slurm time limit"),
             ({"memory": "lots"}, "memory must be an amount"),
             ({"lifetime": "soon"}, "must be a duration"),
             ({"start_timeout": 0}, "start_timeout must be > 0"),
             ({"job_extra_directives": "--qos=long"}, "list of strings")]
    for table, message in cases:
        with pytest.raises(ConfigError, match=re.escape(message)):
            load_experiment(write_experiment(tmp_path, table))
    # and on the command line: one line, exit status 2, nothing written
    proc = cli("run", write_experiment(tmp_path), "--out", tmp_path / "out", "--cluster", "slurm", "--gpus", "2")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and "gpus must be 0 or 1" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_the_job_script_takes_flags_over_the_table_over_dask_jobqueue_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where the default log directory goes
    path = write_experiment(tmp_path, {"queue": "table-queue", "account": "lab", "cores": 4, "memory": "8GB",
                                       "walltime": "02:00:00", "job_script_prologue": ["module load python"],
                                       "job_extra_directives": ["--qos=long"]})
    config = {"jobqueue.slurm.queue": "config-queue", "jobqueue.slurm.account": "config-account",
              "jobqueue.slurm.job-extra-directives": ["--constraint=config"]}
    with dask.config.set(config):
        proc = cli("cluster", "show", path, "--queue", "flag-queue", "--prologue", "source venv/bin/activate")
        plain = cli("cluster", "show")
    assert proc.returncode == 0, proc.stderr
    script = proc.stdout
    for line in ("#SBATCH -p flag-queue", "#SBATCH -A lab", "#SBATCH --cpus-per-task=4", "#SBATCH --mem=8G",
                 "#SBATCH -t 02:00:00", "#SBATCH --constraint=config", "#SBATCH --qos=long",
                 "source venv/bin/activate", f"-e {tmp_path / 'slurm-logs'}/"):
        assert line in script, line
    assert "module load python" not in script  # the flag's prologue replaced the table's
    lifetime, stagger = worker_lifetime(7200)
    worker = script.strip().splitlines()[-1]
    assert worker.startswith(sys.executable)
    for part in ("--nworkers 4", "--nthreads 1", "--preload gridnoise",
                 f"--lifetime {lifetime}s", f"--lifetime-stagger {stagger}s"):
        assert part in worker, part  # four single-threaded workers per job, retiring before the walltime
    # with nothing given, dask-jobqueue's configuration decides, then gridnoise's defaults
    assert plain.returncode == 0 and "#SBATCH -p config-queue" in plain.stdout
    assert "#SBATCH --cpus-per-task=1" in plain.stdout and "#SBATCH --mem=2G" in plain.stdout
    assert f"-e {tmp_path / 'slurm-logs'}/" in plain.stdout  # slurm-logs under the current directory


def test_a_gpu_job_hosts_one_worker_that_offers_its_gpu_to_tasks_that_run_on_cuda(tmp_path, monkeypatch):
    """What can be checked without a GPU: the job asks Slurm for one, its single worker offers it as
    a Dask resource, each task asks for it and is sent with device cuda (the study on Slurm below
    shows a worker taking such a task)."""
    monkeypatch.chdir(tmp_path)
    settings = SlurmSettings(cores=4, memory="16GB", gpus=1)
    script = job_script(settings)
    assert "#SBATCH --gres=gpu:1" in script
    assert "--resources GPU=1" in script and "--nworkers" not in script and "--nthreads 4" in script
    gpu, cpu = Cluster("slurm", slurm=settings), Cluster("slurm", slurm=SlurmSettings(cores=4, memory="16GB"))
    assert task_resources(gpu) == {"GPU": 1} and task_resources(cpu) is None
    assert task_device(gpu, "auto") == "cuda" and task_device(gpu, "cpu") == "cpu"
    assert task_device(cpu, "auto") == "auto" and task_device(Cluster(), "auto") == "auto"


def test_no_slurm_here_is_one_line_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    proc = cli("run", write_experiment(tmp_path), "--out", tmp_path / "out", "--cluster", "slurm")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "sbatch is not on this machine" in proc.stderr
    assert not (tmp_path / "out").exists()
    bad = cli("run", write_experiment(tmp_path), "--out", tmp_path / "out", "--cluster", "slurm",
              "--scheduler", "tcp://127.0.0.1:1")
    assert bad.returncode == 2 and "drop --scheduler" in bad.stderr and not (tmp_path / "out").exists()
    local = cli("run", write_experiment(tmp_path), "--out", tmp_path / "out", "--queue", "cpu", "--job-extra=--qos=x")
    assert local.returncode == 2 and local.stderr.count("\n") == 1 and not (tmp_path / "out").exists()
    assert "--queue, --job-extra: Slurm job settings" in local.stderr and "add --cluster slurm" in local.stderr


def test_an_absent_scheduler_file_is_one_line(tmp_path):
    proc = cli("run", write_experiment(tmp_path), "--out", tmp_path / "out", "--scheduler-file",
               tmp_path / "scheduler.json", "--connect-timeout", "1")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "cannot reach the Dask scheduler of" in proc.stderr and "dask scheduler --scheduler-file" in proc.stderr
    assert not (tmp_path / "out").exists()


# ---- on a real single-node Slurm -------------------------------------------------------------------


@pytest.fixture(scope="module")
def studies(tmp_path_factory, slurm):
    """The tiny study run locally, and on Slurm (two one-core jobs at most) with the first job that
    trains a task cancelled by `scancel` once the task has checkpointed: (experiment, local, slurm,
    what the cancellation hit)."""
    root = tmp_path_factory.mktemp("cluster")
    path = write_experiment(root, {**slurm, "maximum_jobs": 2, "job_name": JOB_NAME})
    exp = load_experiment(path)
    run_tasks(exp, root / "local", Cluster(workers=2), progress=False)

    result: dict = {}
    sweep = threading.Thread(target=lambda: result.update(
        outcome=run_tasks(exp, root / "slurm", Cluster("slurm", slurm=exp.cluster), progress=False)))
    sweep.start()
    hit = cancel_a_training_job(root / "slurm", deadline=time.time() + 180)
    sweep.join(timeout=600)
    assert not sweep.is_alive(), "the study on Slurm did not finish within 10 minutes"
    return path, root / "local", root / "slurm", result["outcome"], hit


def cancel_a_training_job(study: Path, deadline: float) -> dict:
    """scancel the job whose worker trains a task of `study` once that task has a checkpoint; the
    task's directory, the job and the checkpoint's step then."""
    while time.time() < deadline:
        for task in sorted(study.glob("*/*/seed_*")):
            segments = rundir.read_segments(task)
            if segments and (task / rundir.CHECKPOINT_FILE).is_file() and not (task / rundir.METRICS_FILE).is_file():
                job = job_of(segments[-1]["pid"])
                if job is not None:
                    step = int(rundir.load_checkpoint(task / rundir.CHECKPOINT_FILE)["step"])
                    subprocess.run(["scancel", job], check=True)
                    return {"task": task, "job": job, "step": step}
        time.sleep(0.05)
    raise AssertionError("no task checkpointed on a Slurm worker within 3 minutes")


def job_of(pid: int) -> str | None:
    """The Slurm job a process of this machine runs in (its SLURM_JOB_ID), None once it has ended."""
    try:
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    return next((v.split(b"=", 1)[1].decode() for v in env if v.startswith(b"SLURM_JOB_ID=")), None)


def test_a_study_on_slurm_ends_with_the_local_numbers_after_scancel(studies):
    _, local, on_slurm, outcome, hit = studies
    assert not outcome.failed and len(outcome.done) == 2
    assert numbers(on_slurm) == numbers(local) and len(numbers(local)) == 2
    # the cancelled task went on from its last checkpoint, in another worker process
    cancelled, resumed = rundir.read_segments(hit["task"])[:2]
    assert resumed["start_step"] >= hit["step"] > 0 and resumed["pid"] != cancelled["pid"]
    # and the study released its jobs when it ended (scancel'd; Slurm may show them ending a moment)
    deadline = time.time() + 30
    while slurm_jobs(JOB_NAME) and time.time() < deadline:
        time.sleep(0.5)
    assert not slurm_jobs(JOB_NAME)


def test_evaluate_on_slurm_with_dask_jobqueue_config_matches_local(studies, tmp_path, slurm):
    """`gridnoise evaluate --cluster slurm` as a user runs it, its job settings from dask-jobqueue's
    own configuration file (DASK_CONFIG), on copies of both studies' tasks."""
    import shutil

    _, local, on_slurm, _, _ = studies
    config = tmp_path / "dask"
    config.mkdir()
    (config / "jobqueue.yaml").write_text(
        "jobqueue:\n  slurm:\n    interface: lo\n    cores: 1\n    memory: 1GB\n    walltime: '00:20:00'\n"
        f"    log-directory: {tmp_path / 'logs'}\n")
    env = {**os.environ, "DASK_CONFIG": str(config)}
    for name, study in (("local", local), ("slurm", on_slurm)):
        shutil.copytree(study, tmp_path / name)
    command = [sys.executable, "-m", "gridnoise.cli", "evaluate", "--metrics", "nll_elbo", "--no-progress"]
    done = subprocess.run([*command, tmp_path / "slurm", "--cluster", "slurm"], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert subprocess.run([*command, tmp_path / "local", "--workers", "1"], capture_output=True).returncode == 0
    assert list((tmp_path / "logs").glob("*.err")), "the jobs' output went elsewhere than the configured directory"

    def bounds(study: Path) -> dict:
        return {str(p.parent.relative_to(study)): json.loads(p.read_text())["nll_elbo"]
                for p in study.glob(f"*/*/seed_*/{rundir.EVALUATION_FILE}")}

    assert bounds(tmp_path / "slurm") == bounds(tmp_path / "local") and len(bounds(tmp_path / "local")) == 2


def test_bad_slurm_settings_are_one_line_and_keep_finished_work(studies, tmp_path, slurm):
    path, _, on_slurm, _, _ = studies
    before = files(on_slurm)
    bare = tmp_path / "bare"  # a Python with distributed and torch but without gridnoise, as on a fresh cluster
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", bare], check=True)
    site = next((bare / "lib").glob("python3*/site-packages"))
    (site / "main.pth").write_text(str(Path(dask.__file__).parents[1]) + "\n")  # its paths, not its .pth files
    jobs = set(slurm_jobs())
    grown = ("--seeds", "0,1,2")  # one more task for the finished study: Slurm jobs are needed
    cases = [(["--queue", "nosuchpartition"], "Slurm refuses the worker job",
              "invalid partition"),
             (["--job-extra=--begin=now+3600", "--start-timeout", "3"], "no Slurm job started a Dask worker within 3 s",
              "PENDING (BeginTime)"),
             (["--python", bare / "bin" / "python"], "ended (FAILED) before its Dask worker joined",
              "No module named 'gridnoise'")]
    for flags, message, why in cases:
        proc = cli("run", path, "--out", on_slurm, "--cluster", "slurm", *grown, *flags)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1, (flags, proc.stderr)
        assert message in proc.stderr and why in proc.stderr, (flags, proc.stderr)
    assert files(on_slurm) == before and not list(on_slurm.glob("*/*/seed_2"))
    proc = cli("run", path, "--out", tmp_path / "new", "--cluster", "slurm", *cases[0][0])
    assert proc.returncode == 2 and cases[0][1] in proc.stderr and not (tmp_path / "new").exists()
    assert set(slurm_jobs()) <= jobs  # the pending job was cancelled


def test_a_gpu_job_on_slurm_sends_its_tasks_to_cuda(studies, tmp_path):
    """The test Slurm's node has one GPU in name only: the job gets it, its worker takes the task that
    asks for it, and the task, sent with device cuda, fails there for want of CUDA: one line."""
    path, _, _, _, _ = studies
    exp = load_experiment(path).restricted(seeds=[0], steps=20)
    outcome = run_tasks(exp, tmp_path / "gpu", Cluster("slurm", slurm=exp.cluster.merged({"gpus": 1})),
                        progress=False)
    assert list(outcome.failed) == ["base/moons/seed_0"]
    assert "device 'cuda' requested but CUDA is not available" in outcome.failed["base/moons/seed_0"]


def test_the_documented_sbatch_recipe_serves_a_study_through_its_scheduler_file(studies, tmp_path):
    path, local, _, _, _ = studies
    scheduler_file = tmp_path / "scheduler.json"
    env = {**os.environ, "SCHEDULER_FILE": str(scheduler_file),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    submitted = subprocess.run(["sbatch", "--parsable", "--ntasks=1", "--mem-per-cpu=1G", "-o", tmp_path / "job.out",
                                RECIPE], env=env, capture_output=True, text=True, check=True)
    job = submitted.stdout.strip().split(";")[0]
    try:
        proc = cli("run", path, "--out", tmp_path / "study", "--scheduler-file", scheduler_file,
                   "--connect-timeout", "120", "--no-progress")
        assert proc.returncode == 0, proc.stderr
    finally:
        subprocess.run(["scancel", job])
    assert numbers(tmp_path / "study") == numbers(local)
