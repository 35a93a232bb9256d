"""How many threads one training process gives torch: the command line's default for `--threads`."""

from __future__ import annotations

import os

MAX_THREADS = 4  # the network's 256-wide matmuls gain little from more threads in one process


def default_threads() -> int:
    """Threads for one process that trains, samples or evaluates: $OMP_NUM_THREADS when it is set,
    else the cores this process may use that the machine is not already busy with (load average),
    at least 1 and at most MAX_THREADS. Oversubscribed threads on a busy machine slow a run several
    fold; an idle 2-core machine trains 1.6-1.75x faster on 2."""
    if os.environ.get("OMP_NUM_THREADS", "").strip().isdigit():
        return max(1, int(os.environ["OMP_NUM_THREADS"]))
    return max(1, min(MAX_THREADS, usable_cores() - int(load_average())))


def usable_cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def load_average() -> float:
    """The machine's one-minute load average (runnable threads, this process's included); 0 where
    the platform has none. A run records its largest (`timings.json`): above its cores, it shared them
    with other work and its times are not comparable with another run's."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
