"""The package as users get it: the sdist and the wheel built from this checkout (`python -m build`, the wheel
from the sdist), their contents and metadata, and each installed into a fresh virtual environment where
`gridnoise --version` and a tiny `gridnoise train` run, outside the repository.

To stay cheap, a fresh environment reuses this one's installed dependencies through a plain path line in a
.pth file (a path line only: this environment's own .pth files, gridnoise's editable finder among them, are
not processed there) and gets gridnoise itself from `pip install --no-deps --no-index`. What pip's resolver
would have checked is checked instead: every runtime requirement in the installed metadata is met
(scripts/install.sh resolves them for real on every CI run)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import sysconfig
import tarfile
import tomllib
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from gridnoise.version import __version__

from conftest import CLEAN_ENV, REPOSITORY, copy_of_checkout

PROJECT = tomllib.loads((REPOSITORY / "pyproject.toml").read_text(encoding="utf-8"))["project"]
EXPERIMENTS = sorted(p.name for p in (REPOSITORY / "src" / "gridnoise" / "experiments").glob("*.toml"))

# Run by a fresh venv's Python: where gridnoise was imported from, its installed version, and every runtime
# requirement (with the extras it asks of its dependencies, one level down) that the environment does not meet.
CHECK_INSTALL = """
import importlib.metadata as md, json
import gridnoise
from packaging.requirements import Requirement

def unmet(requirements, extra=""):
    missing = []
    for text in requirements or []:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate({"extra": extra}):
            continue
        try:
            version = md.version(req.name)
        except md.PackageNotFoundError:
            missing.append(text)
            continue
        if not req.specifier.contains(version, prereleases=True):
            missing.append(f"{text} (found {version})")
        for sub in sorted(req.extras):
            missing += unmet(md.requires(req.name), sub)
    return missing

print(json.dumps({"file": gridnoise.__file__, "version": md.version("gridnoise"),
                  "requires": md.requires("gridnoise"), "unmet": unmet(md.requires("gridnoise"))}))
"""


def run(*cmd, cwd: Path | None = None) -> str:
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=CLEAN_ENV, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> dict[str, Path]:
    """The sdist and the wheel, built once for the module from a copy of the checkout without what builds
    and installs leave there (a stale egg-info's file list would fill gaps in the package's own), and without
    isolation: the build backend is this environment's setuptools, so nothing is downloaded."""
    source = copy_of_checkout(tmp_path_factory.mktemp("source") / "gridnoise")
    out = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "build", "--no-isolation", "--outdir", out, source)
    return {"sdist": out / f"gridnoise-{__version__}.tar.gz",
            "wheel": out / f"gridnoise-{__version__}-py3-none-any.whl"}


def fresh_venv(path: Path) -> Path:
    """A new virtual environment at `path` that sees this environment's installed packages (a plain
    path line, so none of its .pth files runs); its Python."""
    run(sys.executable, "-m", "venv", "--without-pip", path)
    python = path / "bin" / "python"
    site_packages = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))").strip())
    (site_packages / "_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return python


def test_the_wheel_holds_the_package_its_experiment_files_and_licence_and_no_tests_or_docs(dist):
    with zipfile.ZipFile(dist["wheel"]) as wheel:
        names = set(wheel.namelist())
        info = f"gridnoise-{__version__}.dist-info"
        metadata = Parser().parsestr(wheel.read(f"{info}/METADATA").decode())
        licence = wheel.read(f"{info}/licenses/LICENSE")
    modules = {f"gridnoise/{p.relative_to(REPOSITORY / 'src' / 'gridnoise').as_posix()}"
               for p in (REPOSITORY / "src" / "gridnoise").rglob("*.py")}
    assert modules <= names
    assert {f"gridnoise/experiments/{name}" for name in EXPERIMENTS} <= names and EXPERIMENTS
    assert not [n for n in names if n.split("/")[0] in ("tests", "docs", "examples") or "conftest" in n]
    assert licence == (REPOSITORY / "LICENSE").read_bytes()
    assert metadata["Version"] == __version__
    assert metadata["License-Expression"] == PROJECT["license"]
    assert set(metadata.get_all("Provides-Extra")) == set(PROJECT["optional-dependencies"])
    runtime = {str(Requirement(r)) for r in metadata.get_all("Requires-Dist") if "extra ==" not in r}
    assert runtime == {str(Requirement(r)) for r in PROJECT["dependencies"]}


def test_the_sdist_holds_the_sources_licence_citation_and_changelog_but_no_tests_or_docs(dist):
    top = f"gridnoise-{__version__}"
    with tarfile.open(dist["sdist"]) as sdist:
        names = {name.removeprefix(f"{top}/") for name in sdist.getnames()}
    assert {"pyproject.toml", "README.md", "LICENSE", "CITATION.cff", "CHANGELOG.md"} <= names
    assert {f"src/gridnoise/experiments/{name}" for name in EXPERIMENTS} <= names
    assert not [n for n in names if n.split("/")[0] in ("tests", "docs", "examples")]


@pytest.mark.parametrize("kind", ["wheel", "sdist"])
def test_installed_into_a_fresh_venv_it_reports_its_version_and_trains(dist, kind, tmp_path):
    python = fresh_venv(tmp_path / "venv")
    run(python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--ignore-installed",
        "--no-build-isolation", dist[kind], cwd=tmp_path)
    work = tmp_path / "work"  # outside the checkout, so nothing can import its src/
    work.mkdir()
    installed = json.loads(run(python, "-c", CHECK_INSTALL, cwd=work))
    assert Path(installed["file"]).is_relative_to(tmp_path / "venv"), installed["file"]
    assert installed["version"] == __version__
    assert installed["unmet"] == [] and len(installed["requires"]) >= len(PROJECT["dependencies"])
    gridnoise = tmp_path / "venv" / "bin" / "gridnoise"
    assert run(gridnoise, "--version", cwd=work).strip() == f"gridnoise {__version__}"
    run(gridnoise, "train", "--dataset", "moons", "--n-points", 1000, "--timesteps", 20, "--steps", 30,
        "--batch-size", 64, "--num-samples", 200, "--threads", 1, "--out", "run", "--no-progress", cwd=work)
    metrics = json.loads((work / "run" / "metrics.json").read_text())
    assert math.isfinite(metrics["kl_divergence"]) and metrics["training_time"] > 0
    provenance = json.loads((work / "run" / "provenance.json").read_text())
    # the installed code trained it: its version, and no git commit (it does not live in a checkout)
    assert provenance["gridnoise"] == __version__ and provenance["git_commit"] is None
