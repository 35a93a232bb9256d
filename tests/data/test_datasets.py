"""The data sets against the original study's definitions, and the Datasaurus loading."""

import csv
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import make_moons

from gridnoise import data
from gridnoise.data import DATASETS, DataError, load

DATASAURUS = Path(__file__).resolve().parents[3] / "shared" / "data" / "DatasaurusDozen.tsv"


@pytest.fixture(autouse=True)
def _offline_table(monkeypatch):
    """Every test reads the shared copy of the table: never the network."""
    monkeypatch.setenv(data.DATASAURUS_ENV, str(DATASAURUS))


def dino_table() -> np.ndarray:
    with open(DATASAURUS, newline="") as f:
        rows = [(float(r["x"]), float(r["y"])) for r in csv.DictReader(f, delimiter="\t") if r["dataset"] == "dino"]
    return np.array(rows)


def one_line_error(exc_info) -> str:
    message = str(exc_info.value)
    assert "\n" not in message
    return message


def test_registry():
    assert data.STUDY_DATASETS == ("circle", "dino", "line", "moons")
    assert DATASETS == data.STUDY_DATASETS + ("8gaussians", "25gaussians", "checkerboard", "2spirals", "pinwheel",
                                              "swissroll", "rings", "scales")
    assert set(data.GENERATORS) == set(DATASETS)


@pytest.mark.parametrize("name", DATASETS)
def test_shape_dtype_determinism(name):
    a, b = load(name, 5000), load(name, 5000)
    assert a.shape == (5000, 2) and a.dtype == np.float32
    assert np.array_equal(a, b)
    assert not np.array_equal(a, load(name, 5000, seed=7))
    assert np.abs(a).max() < 5  # "the data span roughly [-4, 4] in each axis"


def test_line_is_uniform_on_its_rectangle():
    pts = load("line", 100_000)
    assert pts[:, 0].min() >= -2 and pts[:, 0].max() <= 2 and pts[:, 1].min() >= -4 and pts[:, 1].max() <= 4
    # 8 bins of 12500 expected each; a binomial sd is ~104, so 11500..13500 is ~10 sd wide.
    for column, (lo, hi) in [(0, (-2, 2)), (1, (-4, 4))]:
        counts = np.histogram(pts[:, column], bins=8, range=(lo, hi))[0]
        assert counts.min() > 11_500 and counts.max() < 13_500
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
    table = dino_table()
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
    # only 4 % of circle points and 13-15 % of the others lie inside [-1, 1]^2.
    pts = load(name, 50_000)
    assert low < np.mean((np.abs(pts) < 1).all(axis=1)) < high


def test_unknown_name_and_bad_n():
    with pytest.raises(DataError) as info:
        load("spiral")
    assert one_line_error(info) == (f"unknown data set 'spiral': choose one of {', '.join(DATASETS)}, or a plug-in "
                                    "function as module:function")
    for bad in (0, -3, 2.5):
        with pytest.raises(DataError, match="n must be an integer >= 1"):
            load("moons", bad)


def test_env_var_is_honoured_and_missing_file_explained(tmp_path, monkeypatch):
    missing = tmp_path / "missing.tsv"
    monkeypatch.setenv(data.DATASAURUS_ENV, str(missing))
    with pytest.raises(DataError, match="not found") as info:
        load("dino", 10)
    message = one_line_error(info)
    assert str(missing) in message and "GRIDNOISE_DATASAURUS" in message and "--datasaurus" in message
    assert data.DATASAURUS_URL in message


def test_explicit_path_wins_over_env_var(tmp_path, monkeypatch):
    monkeypatch.setenv(data.DATASAURUS_ENV, str(tmp_path / "missing.tsv"))
    explicit = load("dino", 10, datasaurus_path=DATASAURUS)
    monkeypatch.setenv(data.DATASAURUS_ENV, str(DATASAURUS))
    assert np.array_equal(explicit, load("dino", 10))


def test_corrupt_table_fails_its_checksum(tmp_path):
    corrupt = tmp_path / "corrupt.tsv"
    corrupt.write_bytes(DATASAURUS.read_bytes().replace(b"dino", b"dina", 1))
    with pytest.raises(DataError, match="not the expected Datasaurus table") as info:
        load("dino", 10, datasaurus_path=corrupt)
    assert data.DATASAURUS_SHA256 in one_line_error(info)


def test_malformed_tables_are_explained():
    # Past the checksum these cannot occur; the parser still says what is wrong.
    good = DATASAURUS.read_text()
    lines = good.splitlines()
    assert lines[1].startswith("dino\t")
    one_row_short = "\n".join(lines[:1] + lines[2:])
    cases = [("x\ty\n1\t2\n", "header"), ("dataset\tx\ty\ndino\t1\n", "malformed"),
             ("dataset\tx\ty\ndino\t1\tabc\n", "malformed"), (one_row_short, "141 dino rows")]
    for text, message in cases:
        with pytest.raises(DataError, match=message):
            data._parse_dino(text, "t.tsv")
    assert data._parse_dino(good, "t.tsv").shape == (142, 2)


def test_table_is_parsed_once_per_path_and_read_only():
    first = data.datasaurus_dino(DATASAURUS)
    hits = data._read_dino.cache_info().hits
    assert data.datasaurus_dino(DATASAURUS) is first
    assert data._read_dino.cache_info().hits == hits + 1
    assert np.array_equal(first, dino_table())
    with pytest.raises(ValueError):
        first[0, 0] = 0.0


def test_failed_download_is_one_line(tmp_path, monkeypatch):
    # No table given and the download impossible: port 9 on the loopback refuses at once.
    monkeypatch.delenv(data.DATASAURUS_ENV)
    for proxy in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(proxy, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # an empty pooch cache
    monkeypatch.setattr(data, "DATASAURUS_URL", "http://127.0.0.1:9/DatasaurusDozen.tsv")
    with pytest.raises(DataError, match="cannot download the Datasaurus table") as info:
        load("dino", 10)
    assert "GRIDNOISE_DATASAURUS" in one_line_error(info)


def test_follow_seed_gives_each_seed_its_own_draw_and_is_off_by_default():
    from gridnoise.config import RunConfig, comparable_dict

    fixed = [data.run_points(RunConfig(dataset="moons", seed=s, n_points=500)) for s in (0, 1)]
    assert np.array_equal(*fixed)  # the original study: every seed trains on the same draw
    drawn = []
    for s in (0, 1):
        cfg = RunConfig(dataset="moons", seed=s, n_points=500)
        cfg.data.follow_seed = True
        assert cfg.training_data_seed == cfg.data_seed + s
        drawn.append(data.run_points(cfg))
    assert not np.array_equal(*drawn) and np.array_equal(drawn[0], fixed[0])  # seed 0 keeps data_seed's draw
    assert "data" not in comparable_dict(RunConfig())  # off: finished studies keep their task hashes
    assert comparable_dict(cfg)["data"]["follow_seed"] is True
