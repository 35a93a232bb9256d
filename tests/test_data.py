import csv

import numpy as np
import pytest
from sklearn.datasets import make_moons

from gridnoise import data
from gridnoise.data import DATASETS, DataError, load

from conftest import DATASAURUS


@pytest.mark.parametrize("name", DATASETS)
def test_shape_dtype_determinism(name):
    a, b = load(name, 5000), load(name, 5000)
    assert a.shape == (5000, 2) and a.dtype == np.float32
    assert np.array_equal(a, b)
    assert not np.array_equal(a, load(name, 5000, seed=7))


def test_line_is_uniform_on_its_rectangle():
    pts = load("line", 100_000)
    assert pts[:, 0].min() >= -2 and pts[:, 0].max() <= 2 and pts[:, 1].min() >= -4 and pts[:, 1].max() <= 4
    assert np.histogram(pts[:, 1], bins=8, range=(-4, 4))[0].min() > 11_500  # ~12500 per bin
    # Independent recomputation of the definition: x ~ U(-0.5, 0.5), then y ~ U(-1, 1), times 4.
    rng = np.random.default_rng(42)
    x, y = rng.uniform(-0.5, 0.5, 10), rng.uniform(-1, 1, 10)
    assert np.allclose(load("line", 10), np.stack([x, y], 1) * 4)


def test_circle_is_17_tight_clusters():
    # Rounded coordinates lie on a 5 x 5 lattice {-2..2} x 0.2; normalising gives 16 directions.
    lattice = np.array([(a, b) for a in range(-2, 3) for b in range(-2, 3) if (a, b) != (0, 0)], float)
    directions = np.unique(np.round(lattice / np.linalg.norm(lattice, axis=1, keepdims=True), 6), axis=0)
    centres = np.vstack([3 * directions, [[0, 0]]])
    assert len(centres) == 17
    pts = load("circle", 20_000).astype(np.float64)
    dist = np.linalg.norm(pts[:, None, :] - centres[None], axis=2)
    assert dist.min(axis=1).max() <= 0.03 * 3 + 1e-6  # every point within r <= 0.09 of a centre
    assert len(np.unique(dist.argmin(axis=1))) == 17


def test_moons_is_sklearn_then_affine():
    ref, _ = make_moons(n_samples=1000, noise=0.03, random_state=42)
    expected = np.stack([(ref[:, 0] + 0.3) * 2 - 1, (ref[:, 1] + 0.3) * 3 - 1], 1)
    assert np.allclose(load("moons", 1000), expected, atol=1e-6)


def test_dino_recomputed_from_the_table():
    with open(DATASAURUS, newline="") as f:
        rows = [(float(r["x"]), float(r["y"])) for r in csv.DictReader(f, delimiter="\t") if r["dataset"] == "dino"]
    table = np.array(rows)
    assert len(table) == 142
    rng = np.random.default_rng(42)
    n = 50
    idx = rng.integers(0, 142, n)
    x = table[idx, 0] + rng.normal(size=n) * 0.15
    y = table[idx, 1] + rng.normal(size=n) * 0.15
    expected = np.stack([(x / 54 - 1) * 4, (y / 48 - 1) * 4], 1)
    assert np.allclose(load("dino", n), expected, atol=1e-5)


@pytest.mark.parametrize("name, low, high", [("circle", 0.02, 0.07), ("dino", 0.11, 0.17),
                                             ("line", 0.11, 0.17), ("moons", 0.11, 0.17)])
def test_share_inside_the_seeds_grid(name, low, high):
    # SYSTEM.md section 4: only 4 % of circle points and 13-15 % of the others lie inside [-1, 1]^2.
    pts = load(name, 50_000)
    assert low < np.mean((np.abs(pts) < 1).all(axis=1)) < high


def test_unknown_name_and_bad_n():
    with pytest.raises(DataError, match="unknown data set 'spiral': choose one of circle, dino, line, moons"):
        load("spiral")
    with pytest.raises(DataError, match="n >= 1"):
        load("moons", 0)


def test_datasaurus_sources(tmp_path, monkeypatch):
    monkeypatch.setenv(data.DATASAURUS_ENV, str(tmp_path / "missing.tsv"))
    with pytest.raises(DataError, match="not found") as info:
        load("dino", 10)
    assert "GRIDNOISE_DATASAURUS" in str(info.value) and "\n" not in str(info.value)
    # An explicit path wins over the environment variable.
    assert load("dino", 10, datasaurus_path=DATASAURUS).shape == (10, 2)
    corrupt = tmp_path / "corrupt.tsv"
    corrupt.write_bytes(DATASAURUS.read_bytes().replace(b"dino", b"dina", 1))
    with pytest.raises(DataError, match="not the expected Datasaurus table"):
        load("dino", 10, datasaurus_path=corrupt)
    monkeypatch.setenv(data.DATASAURUS_ENV, str(DATASAURUS))
    assert np.array_equal(load("dino", 10), load("dino", 10, datasaurus_path=DATASAURUS))


def test_extent():
    assert data.data_extent(np.array([[0, 1], [2, -3]])) == (0.0, 2.0, -3.0, 1.0)
