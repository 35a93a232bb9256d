"""The README's two commands install what their job needs and no more: `scripts/main.sh` (the main job) gets
the package and its runtime dependencies only, and `scripts/install.sh` answers an extra it does not know
in one line, before it writes anything. Run for real in a copy of the checkout, from pip's local index like
CI's own install (about a minute: most of it is unpacking torch and the runtime's packages)."""

from __future__ import annotations

import json
import subprocess
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from conftest import CLEAN_ENV, REPOSITORY, copy_of_checkout

PROJECT = tomllib.loads((REPOSITORY / "pyproject.toml").read_text(encoding="utf-8"))["project"]
# pip writes no .pyc files (a fifth of the install's time): what is installed stays the same.
ENV = CLEAN_ENV | {"PIP_NO_COMPILE": "1"}
# What a fresh venv brings on its own (ensurepip), beside what gridnoise asks for.
VENV_OWN = {"pip", "setuptools", "wheel"}

# Run by the new venv's Python: every installed distribution, where gridnoise comes from, and the
# distributions gridnoise's runtime requirements reach (markers evaluated, extras of dependencies followed).
INSTALLED = """
import importlib.metadata as md, json
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

def reach(name, extras=(), seen=None):
    seen = set() if seen is None else seen
    for text in md.requires(name) or []:
        req = Requirement(text)
        if req.marker is not None and not any(req.marker.evaluate({"extra": e}) for e in ("", *extras)):
            continue
        key = canonicalize_name(req.name)
        if key not in seen:
            seen.add(key)
            reach(req.name, tuple(req.extras), seen)
    return seen

import gridnoise
print(json.dumps({"installed": sorted(canonicalize_name(d.metadata["Name"]) for d in md.distributions()),
                  "runtime": sorted(reach("gridnoise")), "file": gridnoise.__file__}))
"""


def extra_only_packages() -> set[str]:
    """The distributions the extras name that the runtime requirements do not."""
    runtime = {canonicalize_name(Requirement(r).name) for r in PROJECT["dependencies"]}
    named = {canonicalize_name(Requirement(r).name)
             for reqs in PROJECT["optional-dependencies"].values() for r in reqs}
    return named - runtime - {"gridnoise"}


def test_an_unknown_extra_is_one_line_and_writes_nothing(tmp_path):
    copy = copy_of_checkout(tmp_path / "gridnoise")  # with no .venv
    proc = subprocess.run(["bash", "scripts/install.sh", "test,nosuch"], cwd=copy, env=ENV,
                          capture_output=True, text=True)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "nosuch" in lines[0] and "choose from" in lines[0], proc.stderr
    assert "test" not in lines[0].split("named")[1].split(":")[0]  # only the unknown name is blamed
    assert not (copy / ".venv").exists()


@pytest.mark.slow
def test_the_main_job_installs_the_runtime_only(tmp_path):
    copy = copy_of_checkout(tmp_path / "gridnoise")  # with no .venv
    # Extra arguments go to `gridnoise reproduce`: --help installs for real, then stops before the study.
    proc = subprocess.run(["bash", "scripts/main.sh", "--help"], cwd=copy, env=ENV, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "usage: gridnoise reproduce" in proc.stdout
    python = copy / ".venv" / "bin" / "python"
    probe = subprocess.run([python, "-c", INSTALLED], cwd=tmp_path, env=ENV, capture_output=True, text=True)
    assert probe.returncode == 0, probe.stderr
    found = json.loads(probe.stdout)
    assert Path(found["file"]).is_relative_to(copy / "src")  # the copy, installed editable
    installed = set(found["installed"]) - {"gridnoise"} - VENV_OWN
    assert installed - set(found["runtime"]) == set(), "installed beyond the runtime requirements"
    assert installed & (extra_only_packages() - set(found["runtime"])) == set()  # pytest, ruff, sphinx, ...
    assert {canonicalize_name(Requirement(r).name) for r in PROJECT["dependencies"]} <= installed
