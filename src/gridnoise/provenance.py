"""What made a result: the software, the hardware and the thread count of a run.

Every run directory gets `provenance.json` (see `gridnoise.rundir`) when its training ends, so a
study's report can list what produced each number and warn when one study mixes versions (a
resumed study, or a cluster whose workers were installed at different times).
"""

from __future__ import annotations

import functools
import platform
import subprocess
from pathlib import Path
from typing import Any

import numpy
import torch

from gridnoise.version import __version__

# The keys whose values must agree across a study for its numbers to be comparable bit for bit.
VERSION_KEYS = ("gridnoise", "git_commit", "git_dirty", "torch", "numpy")


@functools.cache
def git_state() -> tuple[str | None, bool | None]:
    """(commit, dirty) of the checkout gridnoise is imported from, or (None, None) when it is
    installed from a wheel or git is not available. Cached: a worker asks once."""
    source = Path(__file__).resolve().parent
    root = next((p for p in (source, *source.parents) if (p / ".git").exists()), None)
    if root is None or not (root / "src" / "gridnoise").is_dir():  # another project's repository
        return None, None
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                                capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None, None
    return commit, bool(status.strip())


@functools.cache
def cpu_model() -> str:
    """The CPU's model name as the kernel reports it (Linux), else the platform's best guess."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def provenance(device: Any = "cpu") -> dict[str, Any]:
    """The software and hardware of this process for a run on `device` (a torch device or name).

    Keys: gridnoise, git_commit, git_dirty, torch, numpy, python, platform, device, cpu,
    cpu_capability (the instruction set torch's kernels use, e.g. AVX512: results agree bit for bit
    only where it does), gpu (None on CPU), threads (torch's intra-op threads).
    """
    device = torch.device(device)
    commit, dirty = git_state()
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    return {
        "gridnoise": __version__, "git_commit": commit, "git_dirty": dirty,
        "torch": torch.__version__, "numpy": numpy.__version__, "python": platform.python_version(),
        "platform": platform.platform(), "device": str(device), "cpu": cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(), "gpu": gpu,
        "threads": torch.get_num_threads(),
    }


def software(record: dict[str, Any]) -> str:
    """One line naming the software of a provenance record, e.g. `gridnoise 0.1.0 (abc1234, dirty),
    torch 2.13.0+cpu, numpy 2.3.1`."""
    commit = record.get("git_commit")
    where = f" ({commit[:7]}{', dirty' if record.get('git_dirty') else ''})" if commit else ""
    return (f"gridnoise {record.get('gridnoise', '?')}{where}, torch {record.get('torch', '?')}, "
            f"numpy {record.get('numpy', '?')}")


def hardware(record: dict[str, Any]) -> str:
    """One line naming the hardware of a provenance record: the GPU on CUDA, else the CPU, and threads."""
    chip = record.get("gpu") or record.get("cpu", "?")
    return f"{record.get('device', '?')}: {chip}, {record.get('threads', '?')} threads"
