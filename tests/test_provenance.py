"""Provenance: what trained a run, recorded in every run directory."""

import subprocess
from pathlib import Path

import numpy
import torch

import gridnoise
from gridnoise import provenance, rundir
from gridnoise.api import make_config, train

ROOT = Path(__file__).resolve().parents[1]


def test_record_names_the_software_and_hardware_of_this_process():
    record = provenance.provenance("cpu")
    assert record["gridnoise"] == gridnoise.__version__
    assert record["torch"] == torch.__version__ and record["numpy"] == numpy.__version__
    assert record["device"] == "cpu" and record["gpu"] is None
    assert record["threads"] == torch.get_num_threads()
    assert record["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert record["cpu"] and record["cpu"] != "unknown"
    assert f"gridnoise {gridnoise.__version__}" in provenance.software(record)
    assert "threads" in provenance.hardware(record)


def test_git_commit_of_the_checkout_gridnoise_is_imported_from():
    commit, dirty = provenance.git_state()
    if not (ROOT / ".git").exists():  # installed from a wheel or an sdist: nothing to record
        assert (commit, dirty) == (None, None)
        return
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    assert commit == head and isinstance(dirty, bool)
    assert provenance.software({**provenance.provenance(), "git_dirty": True}).count(head[:7] + ", dirty") == 1


def test_every_trained_run_records_its_provenance(tmp_path):
    run = train(make_config(dataset="line", train={"steps": 3}, eval={"num_samples": 50}), out=tmp_path / "r",
                progress=False)
    record = rundir.read_provenance(run.path)
    assert record == {**provenance.provenance(), "threads": record["threads"]}
    assert rundir.read_provenance(tmp_path) is None  # a run from before provenance was kept
