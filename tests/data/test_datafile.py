"""Your own data: every file format, every bad file, the standardising transform, and a run and a
study on a data file, end to end."""

import json

import numpy as np
import pytest

from gridnoise.cli import main
from gridnoise.data import load
from gridnoise.data.datafile import (
    MIN_ROWS,
    TARGET_STD,
    extent_to_data,
    read_points,
    sha256,
    standardization,
    to_data,
    to_model,
)
from gridnoise.errors import DataError

from conftest import cli, study_file

POINTS = np.random.default_rng(0).normal(size=(40, 2)) * [1.0, 2.0] + [0.5, -1.0]


def write_csv(path, rows, header=None, delimiter=","):
    lines = ([delimiter.join(header)] if header else []) + [delimiter.join(map(str, row)) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("make", ["npy", "npz", "npz_key", "csv_header", "csv_plain", "tsv", "txt", "csv_extra"])
def test_every_format_reads_the_same_points(tmp_path, make):
    path = {
        "npy": lambda: (np.save(tmp_path / "a.npy", POINTS), tmp_path / "a.npy")[1],
        "npz": lambda: (np.savez(tmp_path / "a.npz", points=POINTS), tmp_path / "a.npz")[1],
        "npz_key": lambda: (np.savez(tmp_path / "b.npz", other=np.zeros(3), xy=POINTS), tmp_path / "b.npz")[1],
        "csv_header": lambda: write_csv(tmp_path / "a.csv", POINTS.tolist(), ["x", "y"]),
        "csv_plain": lambda: write_csv(tmp_path / "b.csv", POINTS.tolist()),
        "tsv": lambda: write_csv(tmp_path / "a.tsv", POINTS.tolist(), ["x", "y"], "\t"),
        "txt": lambda: write_csv(tmp_path / "a.txt", POINTS.tolist(), delimiter="  "),
        # a label column and the two numbers, in another order: --columns picks them
        "csv_extra": lambda: write_csv(tmp_path / "c.csv", [["p", y, x] for x, y in POINTS.tolist()],
                                       ["name", "up", "across"]),
    }[make]()
    key = "xy" if make == "npz_key" else ""
    columns = ["across", "up"] if make == "csv_extra" else None
    assert np.array_equal(read_points(path, key, columns), POINTS)
    if make == "csv_extra":  # by 0-based index too
        assert np.array_equal(read_points(path, columns=["2", "1"]), POINTS)


@pytest.mark.parametrize("case, message", [
    ("missing", "data file not found"),
    ("strings", "not numeric"),
    ("text_cell", "line 4 has a non-numeric value 'oops'"),
    ("nan", "a NaN or infinite value at row 17"),
    ("one_column", "one numeric column"),
    ("one_column_npy", "one column"),
    ("short", f"fewer than the {MIN_ROWS}"),
    ("latin1", "not UTF-8"),
    ("two_arrays", "holds 2 arrays (a, b): choose one with --data-key"),
    ("bad_key", "has no array 'zz'"),
    ("bad_column", "no column 'z'"),
    ("three_numeric", "3 numeric columns: choose x and y with --columns"),
    ("corrupt_npy", "not a readable .npy"),
    ("suffix", "unknown data file type"),
])
def test_bad_files_are_one_line_errors_naming_the_file(tmp_path, case, message):
    rows = POINTS.tolist()
    key, columns = "", None
    if case == "missing":
        path = tmp_path / "none.csv"
    elif case == "strings":
        path = tmp_path / "s.npy"
        np.save(path, np.array([["a", "b"]] * 20))
    elif case == "text_cell":
        rows[2][1] = "oops"
        path = write_csv(tmp_path / "t.csv", rows, ["x", "y"])
    elif case == "nan":
        rows[16][0] = float("nan")
        path = write_csv(tmp_path / "n.csv", rows)
    elif case == "one_column":
        path = write_csv(tmp_path / "o.csv", [[r[0]] for r in rows], ["x"])
    elif case == "one_column_npy":
        path = tmp_path / "o.npy"
        np.save(path, POINTS[:, 0])
    elif case == "short":
        path = write_csv(tmp_path / "short.csv", rows[:MIN_ROWS - 1])
    elif case == "latin1":
        path = tmp_path / "l.csv"
        path.write_bytes("x,y\ncaf\xe9,1\n".encode("latin-1"))
    elif case in ("two_arrays", "bad_key"):
        path = tmp_path / "two.npz"
        np.savez(path, a=POINTS, b=POINTS)
        key = "zz" if case == "bad_key" else ""
    elif case == "bad_column":
        path = write_csv(tmp_path / "c.csv", rows, ["x", "y"])
        columns = ["x", "z"]
    elif case == "three_numeric":
        path = write_csv(tmp_path / "3.csv", [r + [1.0] for r in rows])
    elif case == "corrupt_npy":
        path = tmp_path / "bad.npy"
        path.write_bytes(b"\x93NUMPY garbage")
    else:
        path = tmp_path / "points.xlsx"
        path.write_text("x")
    with pytest.raises(DataError) as info:
        read_points(path, key, columns)
    text = str(info.value)
    assert message in text and str(path) in text and "\n" not in text


def test_standardization_leaves_study_scale_data_alone_and_scales_the_rest():
    study = load("moons", 5000).astype(np.float64)
    assert standardization(study) == ([0.0, 0.0], 1.0)
    far = study * [100.0, 50.0] + [1000.0, -300.0]  # far from [-4, 4]
    shift, scale = standardization(far)
    model = to_model(far, shift, scale)
    assert np.allclose(model.mean(0), 0, atol=1e-9) and model.std(0).max() == pytest.approx(TARGET_STD)
    # one scale for both axes: the aspect ratio survives
    assert model.std(0)[0] / model.std(0)[1] == pytest.approx(far.std(0)[0] / far.std(0)[1])
    assert np.allclose(to_data(model, shift, scale), far)
    tiny = study * 1e-3  # spread far below the study's: scaled up
    assert standardization(tiny)[1] == pytest.approx(tiny.std(0).max() / TARGET_STD)
    assert standardization(far, "never") == ([0.0, 0.0], 1.0)
    assert standardization(study, "always")[1] == pytest.approx(study.std(0).max() / TARGET_STD)
    assert extent_to_data([-1, 1, -2, 2], [10.0, 20.0], 3.0) == [7.0, 13.0, 14.0, 26.0]
    assert to_model(study, [0.0, 0.0], 1.0) is study  # the identity touches nothing


TINY = """n_points = 1000
[diffusion]
num_timesteps = 20
[train]
steps = 30
batch_size = 64
grid_snapshot_every = 30
[eval]
num_samples = 300
"""


def test_train_on_a_csv_far_from_the_study_scale_returns_samples_in_its_units(tmp_path):
    rng = np.random.default_rng(1)
    centres = np.array([[1000.0, -40.0], [1100.0, 40.0]])
    rows = centres[rng.integers(0, 2, 2000)] + rng.normal(0, 5.0, (2000, 2))
    data = write_csv(tmp_path / "clusters.csv", [["a", x, y] for x, y in rows], ["label", "lon", "lat"])
    config = tmp_path / "c.toml"
    config.write_text(TINY)
    out = tmp_path / "run"
    cli("train", "--config", config, "--dataset", data, "--columns", "lon,lat", "--variant", "conditioning",
        "--out", out, "--no-progress", check=True)
    saved = (out / "config.toml").read_text()
    assert f'sha256 = "{sha256(data)}"' in saved and 'columns = [\n    "lon",\n    "lat",\n]' in saved
    with np.load(out / "samples.npz") as f:
        samples = f["samples"]
    assert 900 < np.median(samples[:, 0]) < 1200 and -100 < np.median(samples[:, 1]) < 100  # the data's units
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["w2"] > 1  # W2 in the data's units, where the clusters are 100 apart
    cli("sample", out, "-n", 200, "--out", tmp_path / "s.npz", check=True)
    with np.load(tmp_path / "s.npz") as f:
        assert 900 < np.median(f["samples"][:, 0]) < 1200
    assert (out / "grids.png").is_file()  # figures drawn in the data's units without error
    assert main(["plot", str(out)]) == 0 and (out / "heatmaps").is_dir()  # the per-snapshot ones on demand


def test_data_with_rounded_coordinates_trains_and_is_measured(tmp_path):
    # Measured coordinates are often rounded: moons to one decimal repeat rows (442 distinct
    # locations among 1000 points, up to 8 copies of one). The KL estimate, precision and recall
    # treat the copies as one location (docs/ties.md), so the run trains and every metric is finite.
    rows = np.round(load("moons", 1000, seed=3).astype(np.float64), 1)
    locations, copies = np.unique(rows, axis=0, return_counts=True)
    assert len(locations) < 0.7 * len(rows) and copies.max() >= 6  # more copies than eval.kl_k = 5
    data = write_csv(tmp_path / "rounded.csv", rows.tolist(), ["x", "y"])
    config = tmp_path / "c.toml"
    config.write_text(TINY)
    out = tmp_path / "run"
    cli("train", "--config", config, "--dataset", data, "--out", out, "--no-progress", check=True)
    metrics = json.loads((out / "metrics.json").read_text())
    for name in ("kl_divergence", "w2", "sliced_w2", "mmd", "precision", "recall", "eval_loss"):
        assert np.isfinite(metrics[name]), name


def test_a_bad_data_file_fails_before_anything_is_written(tmp_path):
    bad = write_csv(tmp_path / "bad.csv", [[1, "x"]] * 30)
    proc = cli("train", "--dataset", bad, "--out", tmp_path / "run", "--steps", 2)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert str(bad) in proc.stderr and not (tmp_path / "run").exists()


@pytest.mark.slow
def test_a_study_on_a_data_file_notices_when_the_file_changes(tmp_path):
    data = tmp_path / "pts.npy"
    np.save(data, np.random.default_rng(2).normal(size=(500, 2)))
    experiment = study_file(tmp_path / "e.toml", "file", [str(data)], [0], '[runs.base]\nvariant = "baseline"\n')
    out = tmp_path / "study"
    assert "1 tasks done (0 already" in cli("run", experiment, "--out", out, "--workers", 1,
                                            "--no-progress", check=True).stdout
    assert "1 tasks done (1 already" in cli("run", experiment, "--out", out, "--workers", 1,
                                            "--no-progress", check=True).stdout
    np.save(data, np.random.default_rng(3).normal(size=(500, 2)))
    proc = cli("run", experiment, "--out", out, "--workers", 1, "--no-progress")
    assert proc.returncode == 2 and "changed since" in proc.stderr and "Traceback" not in proc.stderr
