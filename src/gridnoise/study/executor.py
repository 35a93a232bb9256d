"""Running a study on Dask: one task per (run, data set, seed), finished tasks skipped.

By default an embedded `LocalCluster` with one single-threaded worker process per core; the
tasks can also go to an existing Dask cluster or to Slurm jobs (`gridnoise.study.cluster`), whose
workers have gridnoise installed and see the same output directory. Each task writes atomically into
its own directory and resumes from its checkpoint, so killing the command (or a worker)
and starting it again completes the study with the same numbers.
"""

from __future__ import annotations

import contextlib
import os
import resource
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from distributed import wait
from tqdm import tqdm  # the plain bar: tqdm.auto wants ipywidgets in a notebook

from gridnoise.config import RunConfig, from_dict, to_dict
from gridnoise.data import run_points
from gridnoise.data.datafile import is_data_file
from gridnoise.errors import OutputExistsError
from gridnoise.files import write_json
from gridnoise.run import train_run
from gridnoise.rundir import (
    CONFIG_FILE,
    EXPERIMENT_FILE,
    METRICS_FILE,
    TASK_FILE,
    read_config,
    read_json,
    read_metrics,
    read_timings,
    task_dir,
)
from gridnoise.study.cluster import Cluster, client_for, task_device, task_resources
from gridnoise.study.experiment import Experiment, Task
from gridnoise.study.results import read_experiment_record
from gridnoise.tracking import mlflow_experiment, mlflow_store

REFRESH_SECONDS = 2.0


@dataclass
class SweepOutcome:
    done: list[str] = field(default_factory=list)  # task keys finished now or before
    skipped: list[str] = field(default_factory=list)  # finished before this invocation
    failed: dict[str, str] = field(default_factory=dict)  # task key -> one-line error


# glibc malloc thresholds for training in a worker: no heap trimming below 256 MiB and no mmap below
# 32 MiB (glibc's maximum), so a step's tensors reuse freed memory instead of faulting in fresh pages.
TRIM_THRESHOLD = 256 << 20
MMAP_THRESHOLD = 32 << 20


def keep_freed_memory() -> bool:
    """Stop glibc from returning every freed tensor to the OS; True if it applied.

    Dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536, which also pins the mmap
    threshold at 128 KiB: each training step then maps and unmaps its activations (about 1500
    page faults a step), which made a step in a worker 1.5-2x slower than the same step in a
    plain process. mallopt(3) resets both thresholds at run time, so it works on any cluster.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if not sys.platform.startswith("linux") or name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        m_trim_threshold, m_mmap_threshold = -1, -3  # from <malloc.h>
        return bool(libc.mallopt(m_mmap_threshold, MMAP_THRESHOLD) and libc.mallopt(m_trim_threshold, TRIM_THRESHOLD))
    except (OSError, AttributeError):  # not glibc (e.g. musl has no mallopt)
        return False


def execute_task(config: dict, directory: str, threads: int = 1) -> dict:
    """Worker side: train, evaluate and sample one task into `directory` (resuming if begun), and
    record in its task.json its peak memory, wall time and where that time went (`task_phases`)."""
    keep_freed_memory()
    torch.set_num_threads(threads)
    cfg = from_dict(RunConfig, config).validate()
    trains = read_metrics(directory) is None  # else finished before (killed before task.json was updated)
    start = time.perf_counter()
    metrics = train_run(cfg, directory, resume=True, progress=False)
    wall_time = time.perf_counter() - start
    task_file = Path(directory) / TASK_FILE
    info = read_json(task_file, "task.json")
    # ru_maxrss (KiB on Linux) is the worker process's peak so far: an upper bound for this task.
    info.update(peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, wall_time=wall_time,
                worker_pid=os.getpid())
    if trains:
        info.update(task_phases(read_timings(directory), wall_time))
    write_json(task_file, info)
    return metrics


def task_phases(timings: dict[str, float], wall_time: float) -> dict[str, float]:
    """Where a task's `wall_time` went, from its run's `timings.json`: `training_time` (the loop),
    `evaluation_time` (eval loss, sampling and sample metrics), `figures_time`, and `overhead_time`,
    everything beyond training and evaluation (setup, snapshots, checkpoints, figures), with
    `overhead_share` its fraction of the wall time. Issue 24's budget for that share is 3 %."""
    training, evaluation = timings["training_time"], timings["evaluation_time"]
    overhead = wall_time - training - evaluation
    return {"training_time": training, "evaluation_time": evaluation, "figures_time": timings["figures_time"],
            "overhead_time": overhead, "overhead_share": overhead / wall_time}


def study_record(exp: Experiment, out: Path) -> dict:
    """What `out`'s `experiment.json` is to hold for `exp` (its data sets and seeds grown by `exp`'s),
    refusing a directory that holds anything else; writes nothing."""
    if (out / EXPERIMENT_FILE).is_file():
        saved = read_experiment_record(out)
        if saved.get("identity") != exp.identity():
            raise OutputExistsError(
                f"{out} holds results of another experiment ('{saved.get('name')}', other runs or settings): "
                "choose another --out"
            )
        datasets = saved["datasets"] + [d for d in exp.datasets if d not in saved["datasets"]]
        seeds = sorted(set(saved["seeds"]) | set(exp.seeds))
    else:
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise OutputExistsError(f"{out} exists and is not a gridnoise study directory: choose another --out")
        datasets, seeds = list(exp.datasets), list(exp.seeds)
    record = {
        "name": exp.name, "identity": exp.identity(), "description": exp.description, "baseline": exp.baseline,
        "runs": [{"name": r.name, "label": r.label, "variant": r.variant} |
                 ({"per_dataset": r.per_dataset} if r.per_dataset else {}) for r in exp.runs],
        "datasets": datasets, "seeds": seeds, "primary": exp.primary, "question": exp.question,
    }
    return record | ({"tuned": exp.tuned} if exp.tuned else {})


def check_data_files(tasks: list[Task]) -> None:
    """Read every data file the tasks train on, so a bad one fails here, before anything is written,
    not in a worker (each (file, key, columns) once)."""
    seen = set()
    for task in tasks:
        data = task.config.data
        read = (task.dataset, data.key, tuple(data.columns))
        if is_data_file(task.dataset) and read not in seen:
            seen.add(read)
            run_points(task.config)


def is_finished(task: Task, out: Path) -> bool:
    d = task_dir(out, task.run, task.dataset, task.seed)
    if not (d / TASK_FILE).is_file():
        return False
    if read_json(d / TASK_FILE, TASK_FILE).get("hash") != task.config_hash:
        saved = read_config(d).data.sha256 if (d / CONFIG_FILE).is_file() else ""
        if saved and task.config.data.sha256 and saved != task.config.data.sha256:
            raise OutputExistsError(f"the data file {task.dataset} changed since {d} was trained (sha256 "
                                    f"{task.config.data.sha256[:12]}..., was {saved[:12]}...): restore it, or "
                                    "run the study into another --out")
        raise OutputExistsError(f"{d} holds a task with other settings: choose another --out")
    return (d / METRICS_FILE).is_file()


def run_tasks(exp: Experiment, out: str | Path, cluster: Cluster | None = None, progress: bool = True) -> SweepOutcome:
    """Run every unfinished task of `exp` into `out` on `cluster` (default: a local one, a worker
    process per core); failures are collected, not raised."""
    cluster = cluster or Cluster()
    out = Path(out).resolve()
    # Everything is read and checked before the first file is written: the study record, the data
    # files and every task's task.json; then a remote cluster is reached (if there is work for it),
    # so one that cannot be fails before anything is written.
    record = study_record(exp, out)
    tasks = exp.tasks()
    check_data_files(tasks)
    finished = [is_finished(task, out) for task in tasks]
    outcome = SweepOutcome()
    for task in (t for t, done in zip(tasks, finished) if done):
        outcome.skipped.append(task.key)
        outcome.done.append(task.key)
    pending = [t for t, done in zip(tasks, finished) if not done]
    with contextlib.ExitStack() as stack:
        remote = stack.enter_context(client_for(cluster)) if cluster.remote and pending else None
        write_json(out / EXPERIMENT_FILE, record)
        if not pending:
            return outcome
        for task in pending:
            d = task_dir(out, task.run, task.dataset, task.seed)
            write_json(d / TASK_FILE, {"hash": task.config_hash, "run": task.run, "dataset": task.dataset,
                                       "seed": task.seed})
        configs = {t.key: task_config(t, exp, out, cluster) for t in pending}
        client = remote or stack.enter_context(client_for(cluster))
        futures = {
            client.submit(execute_task, configs[t.key], str(task_dir(out, t.run, t.dataset, t.seed)),
                          key=f"gridnoise-{t.key}-{t.config_hash}", pure=False,
                          resources=task_resources(cluster)): t.key
            for t in pending
        }
        collect(futures, outcome, SweepProgress(len(outcome.done) + len(pending), len(outcome.done), client,
                                                enabled=progress))
    return outcome


def collect(futures: dict, outcome: SweepOutcome, display: SweepProgress) -> None:
    """Wait for `futures` (Dask future -> task key), recording each in `outcome` as it ends: done, or
    failed with its one-line error. Failures are collected, not raised, so one bad task does not stop
    the others; `display` is refreshed every few seconds and closed at the end."""
    remaining = set(futures)
    while remaining:
        try:  # wake up every few seconds to refresh the running count and ETA
            finished = wait(remaining, timeout=REFRESH_SECONDS, return_when="FIRST_COMPLETED").done
        except TimeoutError:
            finished = set()
        for future in finished:
            if future.status == "finished":
                outcome.done.append(futures[future])
            else:
                outcome.failed[futures[future]] = error_line(future.exception())
        remaining -= finished
        display.update(len(outcome.done), len(outcome.failed))
    display.close()


def task_config(task: Task, exp: Experiment, out: Path, cluster: Cluster) -> dict:
    """A task's config for its worker, with what its trackers need to group the study's runs: the
    run name `<run>/<dataset>/seed_<s>`, the study's MLflow experiment and store (created here, once,
    so workers do not race to create them), and the device of `cluster`'s workers."""
    config = to_dict(task.config)
    config["device"] = task_device(cluster, config["device"])
    log = config["log"]
    log["run_name"] = log["run_name"] or task.key
    log["mlflow_experiment"] = log["mlflow_experiment"] or exp.name
    if "mlflow" in log["trackers"]:
        log["mlflow_tracking_uri"] = mlflow_store(task.config, out)
        mlflow_experiment(log["mlflow_tracking_uri"], log["mlflow_experiment"])
    return config


def error_line(error: BaseException | None) -> str:
    text = f"{type(error).__name__}: {error}" if error is not None else "unknown error"
    return " ".join(text.split())[:500]


class SweepProgress:
    """One live line across the sweep: tasks done, running, failed, and an ETA."""

    def __init__(self, total: int, done: int, client, enabled: bool = True, desc: str = "study"):
        self.client = client
        self.start_done = done
        self.bar = tqdm(total=total, initial=done, disable=not enabled, unit="task", dynamic_ncols=True,
                        file=sys.stderr, desc=desc)
        self.update(done, 0)

    def running(self) -> int:
        try:  # a worker may hold more tasks than threads; only one per thread is running
            threads = self.client.nthreads()
            return sum(min(len(keys), threads.get(w, 1)) for w, keys in self.client.processing().items())
        except Exception:  # the scheduler may be busy or gone; the count is only informative
            return -1

    def update(self, done: int, failed: int) -> None:
        self.bar.update(done + failed - self.bar.n)
        self.bar.set_postfix(done=done, running=max(self.running(), 0), failed=failed)

    def close(self) -> None:
        self.bar.close()
