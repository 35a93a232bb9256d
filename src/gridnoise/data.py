"""The four 2-D data sets of the study, generated exactly as SYSTEM.md section 2 defines them.

`load(name, n)` returns a float32 `(n, 2)` array. `dino` reads the Datasaurus Dozen table:
from an explicit path, else `$GRIDNOISE_DATASAURUS`, else a cached, checksummed download.
"""

from __future__ import annotations

import csv
import functools
import os
from pathlib import Path
from typing import Callable

import numpy as np

DATASAURUS_URL = "https://raw.githubusercontent.com/jumpingrivers/datasauRus/main/inst/extdata/DatasaurusDozen.tsv"
DATASAURUS_SHA256 = "c8c4792c3ed15238ba07dad6ab778adc79d72e3e1324ead4d8c1ae52849780f8"
DATASAURUS_ENV = "GRIDNOISE_DATASAURUS"
DINO_ROWS = 142
HOW_TO_PROVIDE = (f"download DatasaurusDozen.tsv from {DATASAURUS_URL} and pass --datasaurus PATH "
                  f"or set {DATASAURUS_ENV}")


class DataError(ValueError):
    """A data set cannot be produced; the message says why and what to do."""


def _line(n: int, rng: np.random.Generator) -> np.ndarray:
    x = rng.uniform(-0.5, 0.5, n)
    y = rng.uniform(-1, 1, n)
    return np.stack([x, y], axis=1) * 4


def _circle(n: int, rng: np.random.Generator) -> np.ndarray:
    x = np.round(rng.uniform(-0.5, 0.5, n) / 2, 1) * 2
    y = np.round(rng.uniform(-0.5, 0.5, n) / 2, 1) * 2
    norm = np.sqrt(x**2 + y**2) + 1e-10
    x, y = x / norm, y / norm
    theta = 2 * np.pi * rng.uniform(0, 1, n)
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
    idx = rng.integers(0, len(table), n)
    x = table[idx, 0] + rng.normal(size=n) * 0.15
    y = table[idx, 1] + rng.normal(size=n) * 0.15
    return np.stack([(x / 54 - 1) * 4, (y / 48 - 1) * 4], axis=1)


GENERATORS: dict[str, Callable[..., np.ndarray]] = {
    "circle": lambda n, seed, path: _circle(n, np.random.default_rng(seed)),
    "dino": lambda n, seed, path: _dino(n, np.random.default_rng(seed), path),
    "line": lambda n, seed, path: _line(n, np.random.default_rng(seed)),
    "moons": lambda n, seed, path: _moons(n, seed),
}
DATASETS = tuple(sorted(GENERATORS))


def load(name: str, n: int = 100_000, *, seed: int = 42,
         datasaurus_path: str | os.PathLike | None = None) -> np.ndarray:
    """Data set `name` as a float32 `(n, 2)` array; the same arguments give the same points."""
    if name not in GENERATORS:
        raise DataError(f"unknown data set '{name}': choose one of {', '.join(DATASETS)}")
    if n < 1:
        raise DataError(f"a data set needs n >= 1 points (got {n})")
    return GENERATORS[name](n, seed, datasaurus_path).astype(np.float32)


def data_extent(points: np.ndarray) -> tuple[float, float, float, float]:
    """(xmin, xmax, ymin, ymax) of a point cloud."""
    return (float(points[:, 0].min()), float(points[:, 0].max()),
            float(points[:, 1].min()), float(points[:, 1].max()))


def datasaurus_dino(path: str | os.PathLike | None = None) -> np.ndarray:
    """The 142 (x, y) rows of the `dino` data set, float64, from the checked table."""
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


@functools.lru_cache(maxsize=4)
def _read_dino(path: str) -> np.ndarray:
    import pooch

    if not Path(path).is_file():
        raise DataError(f"Datasaurus table not found at {path}: {HOW_TO_PROVIDE}")
    digest = pooch.file_hash(path, alg="sha256")
    if digest != DATASAURUS_SHA256:
        raise DataError(f"{path} is not the expected Datasaurus table (sha256 {digest[:12]}..., expected "
                        f"{DATASAURUS_SHA256[:12]}...): it is corrupt or another file - {HOW_TO_PROVIDE}")
    with open(path, newline="") as f:
        rows = [(float(r["x"]), float(r["y"])) for r in csv.DictReader(f, delimiter="\t")
                if r["dataset"] == "dino"]
    if len(rows) != DINO_ROWS:
        raise DataError(f"{path} has {len(rows)} dino rows, expected {DINO_ROWS}: {HOW_TO_PROVIDE}")
    return np.asarray(rows, dtype=np.float64)
