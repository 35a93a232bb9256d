"""The data set registry: the original study's four data sets and the standard 2-D benchmarks.

`load(name, n)` returns a float32 `(n, 2)` array; the same name, n and seed give the same points.
`circle`, `dino`, `line` and `moons` are generated exactly as the original study generated them;
the others are in `gridnoise.data.toy`. `dino` reads the Datasaurus Dozen table: from an explicit
path, else `$GRIDNOISE_DATASAURUS`, else a cached, checksummed download.
"""

from __future__ import annotations

import csv
import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from gridnoise.data import toy
from gridnoise.data.datafile import check_distinct, is_data_file, read_points, to_model
from gridnoise.errors import ConfigError, DataError

STUDY_DATASETS = ("circle", "dino", "line", "moons")  # the original study's
DATASAURUS_URL = "https://raw.githubusercontent.com/jumpingrivers/datasauRus/main/inst/extdata/DatasaurusDozen.tsv"
DATASAURUS_SHA256 = "c8c4792c3ed15238ba07dad6ab778adc79d72e3e1324ead4d8c1ae52849780f8"
DATASAURUS_ENV = "GRIDNOISE_DATASAURUS"
DINO_ROWS = 142
HOW_TO_PROVIDE = (f"download DatasaurusDozen.tsv from {DATASAURUS_URL} and pass --datasaurus PATH "
                  f"or set {DATASAURUS_ENV}")


def _line(n: int, rng: np.random.Generator) -> np.ndarray:
    x = rng.uniform(-0.5, 0.5, n)
    y = rng.uniform(-1, 1, n)
    return np.stack([x, y], axis=1) * 4


def _circle(n: int, rng: np.random.Generator) -> np.ndarray:
    # Rounding snaps each coordinate to {-0.4, -0.2, 0, 0.2, 0.4}; normalising leaves 16 directions
    # plus the origin (whose norm is 0, hence the 1e-10).
    x = np.round(rng.uniform(-0.5, 0.5, n) / 2, 1) * 2
    y = np.round(rng.uniform(-0.5, 0.5, n) / 2, 1) * 2
    norm = np.sqrt(x**2 + y**2) + 1e-10
    x, y = x / norm, y / norm
    theta = rng.uniform(0, 1, n) * 2 * np.pi
    r = rng.uniform(0, 0.03, n)
    x, y = x + r * np.cos(theta), y + r * np.sin(theta)
    return np.stack([x, y], axis=1) * 3


def _moons(n: int, seed: int) -> np.ndarray:
    from sklearn.datasets import make_moons

    points, _ = make_moons(n_samples=n, noise=0.03, random_state=seed)
    x = (points[:, 0] + 0.3) * 2 - 1
    y = (points[:, 1] + 0.3) * 3 - 1
    return np.stack([x, y], axis=1)


def _dino(n: int, rng: np.random.Generator, path: str | os.PathLike | None) -> np.ndarray:
    table = datasaurus_dino(path)
    idx = rng.integers(0, DINO_ROWS, n)
    x = table[idx, 0] + rng.normal(size=n) * 0.15
    y = table[idx, 1] + rng.normal(size=n) * 0.15
    return np.stack([(x / 54 - 1) * 4, (y / 48 - 1) * 4], axis=1)


# name -> generator(n, seed, datasaurus_path); each returns float64 (n, 2).
GENERATORS: dict[str, Callable[[int, int, str | os.PathLike | None], np.ndarray]] = {
    "circle": lambda n, seed, path: _circle(n, np.random.default_rng(seed)),
    "dino": lambda n, seed, path: _dino(n, np.random.default_rng(seed), path),
    "line": lambda n, seed, path: _line(n, np.random.default_rng(seed)),
    "moons": lambda n, seed, path: _moons(n, seed),
}


def _seeded(generate: Callable[[int, np.random.Generator], np.ndarray]):
    """A benchmark generator `(n, rng)` in the registry's shape `(n, seed, datasaurus_path)`."""
    def generator(n: int, seed: int, path: str | os.PathLike | None) -> np.ndarray:
        return generate(n, np.random.default_rng(seed))
    return generator


GENERATORS.update({name: _seeded(generate) for name, generate in toy.GENERATORS.items()})
DATASETS = tuple(GENERATORS)  # every registered name: the study's four, then the benchmarks

DESCRIPTIONS = {
    "circle": "17 tight clusters: 16 directions on a circle of radius 3, and the centre",
    "dino": "the Datasaurus dino, 142 points each blurred by N(0, 0.15^2), scaled into [-4, 4]^2",
    "line": "uniform on the rectangle [-2, 2] x [-4, 4]",
    "moons": "scikit-learn's two moons (noise 0.03), stretched",
    "8gaussians": "8 Gaussians on a circle of radius 2.83, std 0.35",
    "25gaussians": "25 Gaussians on a 5 x 5 lattice of spacing 0.71, std 0.018",
    "checkerboard": "uniform on 8 alternating squares of side 2 in [-4, 4]^2",
    "2spirals": "two interleaved spiral arms",
    "pinwheel": "5 curved arms",
    "swissroll": "the swiss roll's (x, z) plane",
    "rings": "4 concentric circles of radii 3, 2.25, 1.5 and 0.75",
    "scales": "4 Gaussian blobs whose standard deviations span 30x (0.025 to 0.75)",
}


def check_dataset(name: str) -> None:
    """Raise ConfigError unless `name` is a registered data set, a plug-in that loads, or a data
    file name (whose contents are checked when it is read)."""
    if is_data_file(name):
        return
    try:
        _generator(name)
    except DataError as e:
        raise ConfigError(str(e)) from None


def _generator(name: str) -> Callable[[int, int, str | os.PathLike | None], np.ndarray]:
    if name in GENERATORS:
        return GENERATORS[name]
    from gridnoise.plugins import DATASET_GROUP, dataset_function, installed

    plugin = dataset_function(name)
    if plugin is None:
        choices = ", ".join([*DATASETS, *installed(DATASET_GROUP)])
        raise DataError(f"unknown data set '{name}': choose one of {choices}, or a plug-in function as "
                        "module:function")
    return _checked(name, _seeded(plugin))


def _checked(name: str, generate: Callable[[int, int, str | os.PathLike | None], np.ndarray]):
    """A plug-in generator whose output is checked: n finite points in 2-D."""
    def generator(n: int, seed: int, path: str | os.PathLike | None) -> np.ndarray:
        try:
            drawn = generate(n, seed, path)
        except Exception as e:  # a plug-in can fail in any way; its own message says how
            raise DataError(f"data set '{name}' failed ({type(e).__name__}: {e}) - fix the plug-in, or check "
                            "that it is a function (n, rng) -> (n, 2) array") from None
        try:
            points = np.asarray(drawn, dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise DataError(f"data set '{name}' did not return numbers ({type(e).__name__}: {e})") from None
        if points.shape != (n, 2):
            raise DataError(f"data set '{name}' returned an array of shape {points.shape}: a data set plug-in "
                            f"returns (n, 2), here ({n}, 2)")
        if not np.isfinite(points).all():
            raise DataError(f"data set '{name}' returned NaN or infinite values")
        check_distinct(points, f"data set '{name}'")
        return points
    return generator


def load(name: str, n: int = 100_000, *, seed: int = 42, datasaurus_path: str | os.PathLike | None = None,
         key: str = "", columns: list[str] | None = None) -> np.ndarray:
    """Data set `name` as a float32 array: `(n, 2)` points of a registered data set or plug-in (the
    same arguments give the same points), or every row of a data file (`name` ending in .npy,
    .npz, .csv, .tsv or .txt; `key` and `columns` as in `datafile.read_points`)."""
    if is_data_file(name):
        return read_points(name, key, columns).astype(np.float32)
    generate = _generator(name)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise DataError(f"the number of points n must be an integer >= 1 (got {n!r})")
    return generate(int(n), seed, datasaurus_path).astype(np.float32)


def datasaurus_dino(path: str | os.PathLike | None = None) -> np.ndarray:
    """The 142 (x, y) rows of the `dino` data set (read-only float64) from the checksummed table."""
    if path is None:
        path = os.environ.get(DATASAURUS_ENV) or _download()
    return _read_dino(str(Path(path).expanduser().resolve()))


def _download() -> str:
    import pooch

    try:
        return pooch.retrieve(DATASAURUS_URL, known_hash=f"sha256:{DATASAURUS_SHA256}",
                              path=pooch.os_cache("gridnoise"), progressbar=False)
    except Exception as e:  # offline, blocked or a changed file: all mean "provide it by hand"
        raise DataError(f"cannot download the Datasaurus table ({type(e).__name__}): {HOW_TO_PROVIDE}") from None


@functools.lru_cache(maxsize=8)
def _read_dino(path: str) -> np.ndarray:
    """Check and parse the table at `path`, once per path (failures are not cached)."""
    import pooch

    if not Path(path).is_file():
        raise DataError(f"Datasaurus table not found at {path}: {HOW_TO_PROVIDE}")
    try:
        digest = pooch.file_hash(path, alg="sha256")
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read the Datasaurus table at {path} ({type(e).__name__}): {HOW_TO_PROVIDE}") from None
    if digest != DATASAURUS_SHA256:
        raise DataError(f"{path} is not the expected Datasaurus table (corrupt or another file: sha256 {digest}, "
                        f"expected {DATASAURUS_SHA256}): {HOW_TO_PROVIDE}")
    table = _parse_dino(text, path)
    table.flags.writeable = False  # shared by every caller through the cache
    return table


def _parse_dino(text: str, source: str) -> np.ndarray:
    """The `dino` rows of a tab-separated Datasaurus table as a float64 (142, 2) array."""
    reader = csv.DictReader(text.splitlines(), delimiter="\t")
    if not {"dataset", "x", "y"} <= set(reader.fieldnames or ()):
        raise DataError(f"{source} is not a Datasaurus table (header needs dataset, x, y): {HOW_TO_PROVIDE}")
    try:
        rows = [(float(r["x"]), float(r["y"])) for r in reader if r["dataset"] == "dino"]
    except (TypeError, ValueError):  # a short row gives None, a bad cell a non-number
        raise DataError(f"{source} has a malformed dino row: {HOW_TO_PROVIDE}") from None
    if len(rows) != DINO_ROWS:
        raise DataError(f"{source} has {len(rows)} dino rows, expected {DINO_ROWS}: {HOW_TO_PROVIDE}")
    return np.asarray(rows, dtype=np.float64)


def run_points(cfg: Any) -> np.ndarray:
    """The points a run's config (`RunConfig`) trains on, in the data's own units, float32 `(N, 2)`."""
    return load(cfg.dataset, cfg.n_points, seed=cfg.training_data_seed, key=cfg.data.key, columns=cfg.data.columns)


def model_points(cfg: Any) -> np.ndarray:
    """The same points in the model's units (shifted and scaled by the run's `data.shift` and
    `data.scale`, as training saw them), float32 `(N, 2)`."""
    return to_model(run_points(cfg), cfg.data.shift, cfg.data.scale)
