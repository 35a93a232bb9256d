"""Where a study's tasks run: a local Dask cluster, an existing Dask scheduler (its address or its
scheduler file), or Slurm jobs that host Dask workers (dask-jobqueue's `SLURMCluster`).

    Cluster("local", workers=2)                       one single-threaded worker process per core
    Cluster(address="tcp://host:8786")                workers someone started (`dask worker`)
    Cluster(scheduler_file="/shared/scheduler.json")  the same, found through `dask scheduler --scheduler-file`
    Cluster("slurm", slurm=SlurmSettings(queue="cpu", cores=4, memory="16GB", walltime="02:00:00"))

On Slurm, jobs are requested as tasks need them (`adapt`, at most `maximum_jobs`) and released when
idle; each worker retires before its job's walltime (`lifetime`, staggered), and a task whose worker is
lost (walltime, preemption, `scancel`) runs again elsewhere from its last checkpoint. Settings left
unset fall back to dask-jobqueue's configuration (`jobqueue.slurm.*`, e.g. ~/.config/dask/jobqueue.yaml),
then to gridnoise's defaults below.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gridnoise.config import CONNECT_TIMEOUT
from gridnoise.errors import ClusterError, ConfigError

KINDS = ("local", "slurm")
WORKER_PRELOAD = "gridnoise"  # imported by each worker as it starts: without gridnoise, no worker
WORKER_LOSSES = 10  # times a task may lose its worker (walltime, preemption, scancel) before it fails
DEFAULT_LOG_DIRECTORY = "slurm-logs"  # jobs' output files, under the directory gridnoise runs in
POLL_SECONDS = 1.0
ENDED_STATES = {"BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL", "OUT_OF_MEMORY",
                "PREEMPTED", "TIMEOUT"}


@dataclass(frozen=True)
class SlurmSettings:
    """An experiment file's `[cluster]` table: the Slurm jobs that host Dask workers. Names follow
    dask-jobqueue's `SLURMCluster`; None leaves a setting to dask-jobqueue's configuration."""

    job_name: str | None = None  # as squeue shows the jobs (#SBATCH -J; dask-jobqueue's default: dask-worker)
    queue: str | None = None  # the partition (#SBATCH -p)
    account: str | None = None  # #SBATCH -A
    cores: int | None = None  # cores per job (default 1)
    memory: str | None = None  # memory per job, e.g. "8GB" (default 2GB)
    processes: int | None = None  # worker processes per job (default: one per core, each single-threaded)
    walltime: str | None = None  # per job, Slurm's format: "HH:MM:SS", "D-HH:MM:SS", minutes
    job_extra_directives: list[str] | None = None  # more #SBATCH lines, e.g. ["--qos=long"]
    job_script_prologue: list[str] | None = None  # shell lines before the worker starts ("module load ...")
    python: str | None = None  # the Python the jobs run (default: this one); needs gridnoise installed
    interface: str | None = None  # network interface of workers and scheduler, e.g. "ib0"
    local_directory: str | None = None  # fast node-local storage for the workers' scratch files
    log_directory: str | None = None  # the jobs' output files (default slurm-logs, in the current directory)
    scheduler_options: dict[str, Any] | None = None  # e.g. {host = "10.0.0.1", dashboard_address = ":8787"}
    lifetime: str | None = None  # a worker retires after this (default: before the walltime, with a margin)
    lifetime_stagger: str | None = None  # +- this, so that workers do not all retire at once
    maximum_jobs: int = 10  # jobs at once, at most (adapt's maximum)
    gpus: int = 0  # GPUs per job: 0 or 1 (a job with a GPU hosts one worker, whose tasks run on cuda)
    start_timeout: float = 600.0  # seconds the first job may take to start its worker

    def merged(self, overrides: dict[str, Any], source: str = "the command line") -> SlurmSettings:
        """These settings with `overrides` (the command line's; None: not given) on top."""
        given = {k: v for k, v in overrides.items() if v is not None}
        parse_cluster(given, source)  # names and types
        return check_settings(dataclasses.replace(self, **given), source)


FIELDS = {f.name: f for f in dataclasses.fields(SlurmSettings)}
STRINGS = {"job_name", "queue", "account", "memory", "walltime", "python", "interface", "local_directory",
           "log_directory", "lifetime", "lifetime_stagger"}
LISTS = {"job_extra_directives", "job_script_prologue"}


def parse_cluster(table: Any, source: str) -> SlurmSettings:
    """An experiment file's `[cluster]` table as `SlurmSettings`; a one-line error for anything else."""
    if table is None:
        return SlurmSettings()
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: [cluster] must be a table of Slurm job settings, got {table!r}")
    unknown = sorted(set(table) - set(FIELDS))
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {unknown} in [cluster]: valid keys are {', '.join(FIELDS)}")
    for key, value in table.items():
        ok = (isinstance(value, str) if key in STRINGS else
              isinstance(value, list) and all(isinstance(v, str) for v in value) if key in LISTS else
              isinstance(value, dict) if key == "scheduler_options" else
              isinstance(value, (int, float)) and not isinstance(value, bool) if key == "start_timeout" else
              isinstance(value, int) and not isinstance(value, bool))
        if not ok:
            kind = ("a string" if key in STRINGS else "a list of strings" if key in LISTS else
                    "a table" if key == "scheduler_options" else "a number" if key == "start_timeout" else
                    "an integer")
            raise ConfigError(f"{source}: [cluster] {key} must be {kind} (got {value!r})")
    return check_settings(SlurmSettings(**table), source)


def check_settings(s: SlurmSettings, source: str) -> SlurmSettings:
    """Refuse settings no job could run with, naming the setting."""
    for key in ("cores", "processes"):
        value = getattr(s, key)
        if value is not None and value < 1:
            raise ConfigError(f"{source}: cluster {key} must be >= 1 (got {value})")
    if s.maximum_jobs < 1:
        raise ConfigError(f"{source}: cluster maximum_jobs must be >= 1 (got {s.maximum_jobs})")
    if s.gpus not in (0, 1):
        raise ConfigError(f"{source}: cluster gpus must be 0 or 1 (GPUs per job; got {s.gpus}): to use more GPUs, "
                          "raise maximum_jobs")
    if s.gpus and s.processes not in (None, 1):
        raise ConfigError(f"{source}: a job with a GPU hosts one worker process: set processes = 1 (got {s.processes})")
    if not s.start_timeout > 0:
        raise ConfigError(f"{source}: cluster start_timeout must be > 0 seconds (got {s.start_timeout})")
    if s.memory is not None:
        _bytes(s.memory, source)
    for key in ("walltime", "lifetime", "lifetime_stagger"):
        value = getattr(s, key)
        if value is not None:
            (slurm_seconds if key == "walltime" else _duration)(value, f"{source}: cluster {key}")
    return s


def _bytes(text: str, source: str) -> int:
    from dask.utils import parse_bytes

    try:
        return parse_bytes(text)
    except (ValueError, TypeError):
        raise ConfigError(f"{source}: cluster memory must be an amount such as \"8GB\" (got {text!r})") from None


def _duration(text: str, where: str) -> float:
    from dask.utils import parse_timedelta

    try:
        return float(parse_timedelta(text))
    except (ValueError, TypeError, KeyError):
        raise ConfigError(f"{where} must be a duration such as \"55m\" or \"3300s\" (got {text!r})") from None


WALLTIME = re.compile(r"^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$")


def slurm_seconds(text: str, where: str = "walltime") -> int:
    """A Slurm time limit in seconds. Slurm's formats (sbatch(1) --time): "M", "M:S", "H:M:S", "D-H",
    "D-H:M" and "D-H:M:S"."""
    match = WALLTIME.match(text.strip())
    if not match:
        raise ConfigError(f"{where} must be a Slurm time limit such as \"02:00:00\" or \"1-00:00:00\" (got {text!r})")
    days, a, b, c = match.groups()
    parts = [int(x) for x in (a, b, c) if x is not None]
    if days is not None:  # D-H, D-H:M, D-H:M:S
        h, m, s = (parts + [0, 0])[:3]
        return ((int(days) * 24 + h) * 60 + m) * 60 + s
    if len(parts) == 3:
        return (parts[0] * 60 + parts[1]) * 60 + parts[2]
    return parts[0] * 60 + (parts[1] if len(parts) == 2 else 0)


def worker_lifetime(walltime_s: int) -> tuple[int, int]:
    """(lifetime, stagger) in seconds for a job of `walltime_s`: the worker retires between
    lifetime - stagger and lifetime + stagger, which ends a margin before the walltime (a tenth of it,
    between 1 and 10 minutes, at most half), so Slurm never kills a worker mid-checkpoint."""
    margin = min(max(walltime_s / 10, 60), 600, walltime_s / 2)
    stagger = margin / 3
    return math.floor(walltime_s - margin), math.floor(stagger)


@dataclass(frozen=True)
class Cluster:
    """Where tasks run (see the module docstring). `kind` "local" with an `address` or a
    `scheduler_file` means an existing Dask cluster."""

    kind: str = "local"
    workers: int | None = None  # local worker processes (default: one per core)
    address: str | None = None  # an existing scheduler, e.g. tcp://host:8786
    scheduler_file: str | None = None  # an existing scheduler's file (dask scheduler --scheduler-file)
    connect_timeout: float = CONNECT_TIMEOUT  # seconds to wait for an existing scheduler
    slurm: SlurmSettings = field(default_factory=SlurmSettings)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ConfigError(f"unknown cluster '{self.kind}': choose {' or '.join(KINDS)}")
        if self.workers is not None and self.workers < 1:
            raise ConfigError(f"--workers must be >= 1 (got {self.workers})")
        if self.address is not None and self.scheduler_file is not None:
            raise ConfigError("give either --scheduler or --scheduler-file, not both")
        if self.kind == "slurm" and self.existing:
            raise ConfigError("--cluster slurm starts its own scheduler: drop --scheduler/--scheduler-file")
        if self.existing and not self.connect_timeout > 0:
            raise ConfigError(f"--connect-timeout must be > 0 seconds (got {self.connect_timeout})")

    @property
    def existing(self) -> bool:
        return self.address is not None or self.scheduler_file is not None

    @property
    def remote(self) -> bool:
        """Connected to before anything is written: an unreachable one fails first."""
        return self.existing or self.kind == "slurm"

    @property
    def gpus(self) -> bool:
        """Tasks ask for a GPU (and run on cuda)."""
        return self.kind == "slurm" and self.slurm.gpus > 0


def make_cluster(kind: str | Cluster = "local", *, workers: int | None = None, address: str | None = None,
                 scheduler_file: str | Path | None = None, connect_timeout: float = CONNECT_TIMEOUT,
                 settings: SlurmSettings | None = None, overrides: dict[str, Any] | None = None) -> Cluster:
    """The `Cluster` a command or API call names: `kind` ("local", "slurm", or a `Cluster` as is),
    Slurm `settings` (an experiment file's [cluster]) with `overrides` (the command line's) on top."""
    if isinstance(kind, Cluster):
        return kind
    slurm = (settings or SlurmSettings()).merged(overrides or {})
    return Cluster(kind, workers=workers, address=address, connect_timeout=connect_timeout, slurm=slurm,
                   scheduler_file=None if scheduler_file is None else str(scheduler_file))


def task_resources(cluster: Cluster) -> dict[str, int] | None:
    """The Dask resources each task needs: one GPU on a cluster whose jobs have one, else none."""
    return {"GPU": 1} if cluster.gpus else None


def task_device(cluster: Cluster, device: str) -> str:
    """The device a task runs on: `cuda` for a task sent to a GPU worker whose config says "auto"
    (so a job without a visible GPU fails loudly instead of training on its CPU), else its own."""
    return "cuda" if cluster.gpus and device == "auto" else device


@contextlib.contextmanager
def client_for(cluster: Cluster) -> Iterator[Any]:
    """A Dask client for `cluster`, closed (with the cluster it started) on exit."""
    from distributed import Client

    if cluster.existing:
        target = cluster.address
        try:
            if target is None:  # distributed waits for a missing scheduler file without a timeout
                target = scheduler_address(Path(str(cluster.scheduler_file)), cluster.connect_timeout)
            client = Client(target, timeout=f"{cluster.connect_timeout}s")
        except (OSError, TimeoutError) as e:
            where = f"at {cluster.address}" if cluster.address is not None else f"of {cluster.scheduler_file}"
            start = ("`dask scheduler` and workers with `dask worker ADDRESS`" if cluster.address is not None else
                     "`dask scheduler --scheduler-file FILE` and workers with `dask worker --scheduler-file FILE`")
            raise ClusterError(
                f"cannot reach the Dask scheduler {where} within {cluster.connect_timeout:g} s ({type(e).__name__}): "
                f"start it with {start}, or drop --scheduler/--scheduler-file"
            ) from None
        with client:
            yield client
    elif cluster.kind == "slurm":
        with slurm_client(cluster.slurm) as client:
            yield client
    else:
        n = cluster.workers or os.cpu_count() or 1
        # A client that starts its own cluster also shuts it down when closed.
        with Client(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0",
                    silence_logs=logging.ERROR) as client:
            yield client


def scheduler_address(path: Path, timeout: float) -> str:
    """The address in a scheduler file (`dask scheduler --scheduler-file`), waiting up to `timeout`
    seconds for the file to appear and hold one."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return str(json.loads(path.read_text())["address"])
        except (OSError, ValueError, KeyError):  # not there yet, or half written
            if time.monotonic() > deadline:
                raise TimeoutError(f"no scheduler file {path}") from None
            time.sleep(0.1)


# ---- Slurm -----------------------------------------------------------------------------------------


def job_kwargs(s: SlurmSettings) -> dict[str, Any]:
    """dask-jobqueue's job keywords for `s`: each setting given, gridnoise's defaults where neither
    `s` nor dask-jobqueue's configuration sets one, the worker's lifetime and the preload."""
    import dask
    import dask_jobqueue  # noqa: F401  (importing it loads its configuration: jobqueue.yaml and defaults)

    def configured(key: str) -> Any:
        return dask.config.get(f"jobqueue.slurm.{key}", None)

    names = ("job_name", "queue", "account", "cores", "memory", "processes", "walltime", "python", "interface",
             "local_directory", "job_script_prologue")
    kwargs: dict[str, Any] = {k: getattr(s, k) for k in names if getattr(s, k) is not None}
    if "cores" not in kwargs and configured("cores") is None:
        kwargs["cores"] = 1
    if "memory" not in kwargs and configured("memory") is None:
        kwargs["memory"] = "2GB"
    if s.gpus:
        kwargs["processes"] = 1
    elif "processes" not in kwargs and configured("processes") is None:
        kwargs["processes"] = kwargs.get("cores", configured("cores"))  # single-threaded workers, as locally
    log_directory = s.log_directory or configured("log-directory") or DEFAULT_LOG_DIRECTORY
    kwargs["log_directory"] = str(Path(log_directory).expanduser().resolve())
    directives = list(configured("job-extra-directives") or []) + list(s.job_extra_directives or [])
    if s.gpus:
        directives.append(f"--gres=gpu:{s.gpus}")
    kwargs["job_extra_directives"] = directives
    extra = list(configured("worker-extra-args") or []) + ["--preload", WORKER_PRELOAD]
    walltime = s.walltime or configured("walltime")
    if s.lifetime or walltime:
        lifetime, stagger = worker_lifetime(slurm_seconds(str(walltime))) if walltime else (0, 0)
        extra += ["--lifetime", s.lifetime or f"{lifetime}s", "--lifetime-stagger", s.lifetime_stagger or f"{stagger}s"]
    if s.gpus:
        extra += ["--resources", f"GPU={s.gpus}"]
    kwargs["worker_extra_args"] = extra
    return kwargs


def job_script(s: SlurmSettings, scheduler: str = "tcp://SCHEDULER:8786") -> str:
    """The batch script a job of `s` submits (as `gridnoise cluster show` prints it)."""
    from dask_jobqueue.slurm import SLURMJob

    try:
        return SLURMJob(scheduler, name="gridnoise-worker", **job_kwargs(s)).job_script()
    except ValueError as e:  # dask-jobqueue's own checks (e.g. cores and memory unset in its configuration)
        raise ConfigError(f"[cluster]: {' '.join(str(e).split())}") from None


def check_slurm_installed() -> None:
    if shutil.which("sbatch") is None:
        raise ClusterError("--cluster slurm needs Slurm, but sbatch is not on this machine's PATH: run gridnoise on "
                           "the cluster's login node (or load its slurm module), or drop --cluster slurm")


def preflight(s: SlurmSettings) -> None:
    """Ask Slurm whether a job of `s` could run (`sbatch --test-only`: nothing is submitted), so a
    partition that does not exist or resources no node has fail before the scheduler starts."""
    with tempfile.NamedTemporaryFile("w", suffix=".sh", prefix="gridnoise-job-") as f:
        f.write(job_script(s))
        f.flush()
        done = subprocess.run(["sbatch", "--test-only", f.name], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        lines = [line.strip() for line in (done.stderr or done.stdout).splitlines() if line.strip()]
        reason = "; ".join(lines) or f"sbatch exit status {done.returncode}"
        raise ClusterError(f"Slurm refuses the worker job ({reason}): fix the [cluster] settings (queue is the "
                           "partition; see `sinfo` and `gridnoise cluster show --cluster slurm`)")


@contextlib.contextmanager
def slurm_client(s: SlurmSettings) -> Iterator[Any]:
    """A client of a `SLURMCluster` for `s` whose first worker is up: its jobs adapt to the tasks
    submitted, and are cancelled on exit."""
    import dask
    from dask_jobqueue import SLURMCluster
    from distributed import Client

    check_slurm_installed()
    preflight(s)
    configured = dask.config.get("jobqueue.slurm.scheduler-options", None) or {}
    scheduler_options = {"dashboard_address": ":0", **configured, **(s.scheduler_options or {})}
    with dask.config.set({"distributed.scheduler.allowed-failures": WORKER_LOSSES}):
        cluster = SLURMCluster(name="gridnoise", scheduler_options=scheduler_options, silence_logs=logging.ERROR,
                               **job_kwargs(s))
    try:
        with Client(cluster) as client:
            cluster.scale(jobs=1)
            wait_for_first_worker(cluster, client, s)
            cluster.adapt(minimum_jobs=0, maximum_jobs=s.maximum_jobs)
            yield client
    finally:
        cluster.close()


def wait_for_first_worker(cluster, client, s: SlurmSettings) -> None:
    """Block until a worker has joined; a job that ended first (its output file's last line says why)
    or that has not started within `s.start_timeout` seconds is a `ClusterError`."""
    timeout = s.start_timeout
    deadline = time.monotonic() + timeout
    while not client.scheduler_info()["workers"]:
        jobs = [j.job_id for j in list(cluster.workers.values()) if getattr(j, "job_id", None)]
        states = job_states(jobs)
        for job in jobs:
            state, reason = states.get(job, ("ENDED", ""))
            if state in ENDED_STATES or state == "ENDED":
                if client.scheduler_info()["workers"]:
                    return
                raise ClusterError(f"the Slurm job {job} ended ({state}) before its Dask worker joined: "
                                   f"{job_output(s, job)}: check that the jobs' Python "
                                   f"({jobs_python(s)}) has gridnoise installed "
                                   "(see `python` and `job_script_prologue` in [cluster])")
        if time.monotonic() > deadline:
            described = ", ".join(f"job {j} {states.get(j, ('unknown', ''))[0]}"
                                  + (f" ({states[j][1]})" if j in states and states[j][1] not in ("", "None") else "")
                                  for j in jobs) or "no job submitted"
            raise ClusterError(f"no Slurm job started a Dask worker within {timeout:g} s ({described}): raise "
                               "start_timeout in [cluster] (or --start-timeout) if the queue is busy, or ask for less "
                               "(cores, memory, walltime) or another queue")
        time.sleep(POLL_SECONDS)


def job_states(jobs: list[str]) -> dict[str, tuple[str, str]]:
    """job id -> (state, reason) of the jobs Slurm still knows (squeue --states=all)."""
    if not jobs:
        return {}
    done = subprocess.run(["squeue", "-h", "--states=all", "-o", "%i|%T|%r", "-j", ",".join(jobs)],
                          capture_output=True, text=True, timeout=60)
    states = {}
    for line in done.stdout.splitlines():
        job, state, reason = (line.split("|") + ["", ""])[:3]
        states[job.strip()] = (state.strip(), reason.strip())
    return states


def jobs_python(s: SlurmSettings) -> str:
    import dask

    return s.python or dask.config.get("jobqueue.slurm.python", None) or sys.executable


def job_output(s: SlurmSettings, job: str) -> str:
    """The last line a job wrote to its error (else output) file, or where to look."""
    directory = Path(job_kwargs(s)["log_directory"])
    for suffix in ("err", "out"):
        for path in directory.glob(f"*-{job}.{suffix}"):
            lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
            if lines:
                return f"{lines[-1]} (from {path})"
    return f"it wrote nothing to {directory}"
