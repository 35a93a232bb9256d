"""The run directory's files, written and read back through `gridnoise.rundir` alone."""

import json

import numpy as np
import pytest

from gridnoise import rundir
from gridnoise.config import RunConfig, adaptation_for
from gridnoise.errors import CheckpointError


def test_config_metrics_losses_and_samples_round_trip(tmp_path):
    cfg = RunConfig(dataset="line", variant="multiscale", adaptation=adaptation_for("multiscale"), seed=3)
    rundir.write_config(tmp_path, cfg)
    assert rundir.read_config(tmp_path) == cfg
    assert rundir.read_metrics(tmp_path) is None  # not finished
    rundir.write_metrics(tmp_path, {"kl_divergence": 0.25})
    assert rundir.read_metrics(tmp_path) == {"kl_divergence": 0.25}
    rundir.write_losses(tmp_path, np.arange(5.0), np.ones(5))
    assert np.array_equal(rundir.read_losses(tmp_path), np.arange(5.0))
    samples = np.random.default_rng(0).normal(size=(7, 2)).astype(np.float32)
    rundir.write_samples(tmp_path, samples)
    assert np.array_equal(rundir.read_samples(tmp_path), samples)
    assert {p.name for p in tmp_path.iterdir()} <= rundir.RUN_ENTRIES


def test_grid_snapshots_in_training_order_with_their_extent(tmp_path):
    cfg = RunConfig(variant="grid10", adaptation=adaptation_for("grid10"))
    for step in (1000, 200, 30):
        rundir.write_grid_snapshot(tmp_path, step, 7, {"grid": np.full((4, 2, 2), step, dtype=np.float32)},
                                   np.array([-2, 2, -3, 3], dtype=np.float32))
    assert [rundir.snapshot_step(p) for p in rundir.grid_snapshots(tmp_path)] == [30, 200, 1000]
    t, grids, extent = rundir.read_grid_snapshot(rundir.final_snapshot(tmp_path), cfg)
    assert t == 7 and extent == [-2, 2, -3, 3] and grids["grid"][0, 0, 0] == 1000
    # a snapshot from before the extent was saved falls back to the config's
    np.savez(tmp_path / "grids" / "grids_step_2000.npz", t=np.int64(1), grid=np.ones((4, 2, 2)))
    assert rundir.read_grid_snapshot(rundir.final_snapshot(tmp_path), cfg)[2] == [-1.0, 1.0, -1.0, 1.0]
    assert rundir.final_snapshot(tmp_path / "none") is None


def test_bad_run_directories_are_one_line_errors(tmp_path):
    with pytest.raises(CheckpointError, match="not a gridnoise run directory"):
        rundir.read_config(tmp_path)
    (tmp_path / rundir.METRICS_FILE).write_text("{not json")
    with pytest.raises(CheckpointError, match="corrupt"):
        rundir.read_metrics(tmp_path)
    (tmp_path / rundir.KL_HISTORY_FILE).write_text("[")
    with pytest.raises(CheckpointError, match="corrupt"):
        rundir.read_kl_history(tmp_path)
    with pytest.raises(CheckpointError, match="task.json not found"):
        rundir.read_json(tmp_path / "task.json", "task.json")
    (tmp_path / "ck.pt").write_bytes(b"\x00" * 10)
    with pytest.raises(CheckpointError, match="corrupt"):
        rundir.load_checkpoint(tmp_path / "ck.pt")


def test_a_plain_dict_is_not_a_checkpoint(tmp_path):
    import torch

    torch.save({"step": 1}, tmp_path / "ck.pt")
    with pytest.raises(CheckpointError, match="lacks"):
        rundir.load_checkpoint(tmp_path / "ck.pt")


def test_task_directories_and_kl_history(tmp_path):
    assert rundir.task_dir(tmp_path, "run_1", "dino", 4) == tmp_path / "run_1" / "dino" / "seed_4"
    assert rundir.read_kl_history(tmp_path) == {"step": [], "kl_divergence": []}
    rundir.write_kl_history(tmp_path, {"step": [10], "kl_divergence": [0.5]})
    assert json.loads((tmp_path / rundir.KL_HISTORY_FILE).read_text())["step"] == [10]


def test_training_segments_record_where_each_session_started_and_ended(tmp_path):
    import os

    assert rundir.read_segments(tmp_path) == []
    rundir.start_segment(tmp_path, 0)
    rundir.start_segment(tmp_path, 40)  # the first session was killed: it has no end
    rundir.end_segment(tmp_path, 100)
    assert rundir.read_segments(tmp_path) == [{"start_step": 0, "pid": os.getpid()},
                                              {"start_step": 40, "end_step": 100, "pid": os.getpid()}]
    assert {p.name for p in tmp_path.iterdir()} <= rundir.RUN_ENTRIES
    (tmp_path / rundir.SEGMENTS_FILE).write_text("[")
    with pytest.raises(CheckpointError, match="corrupt"):
        rundir.read_segments(tmp_path)
