"""Your own data: 2-D points from a file or an array, checked, and the standardising transform.

Files: `.npy` (an `(N, 2)` array), `.npz` (one array, or the one `key` names), `.csv` / `.tsv` /
`.txt` (comma-, tab- or whitespace-separated; a header row is optional; the two numeric columns,
or the two `columns` name by header or 0-based index). Every problem is a one-line `DataError`
naming the file and what is wrong.

Standardising: the network embeds coordinates as if they spanned roughly [-4, 4] (like the
study's data sets), so data far from that scale are moved and scaled, x_model = (x - shift) /
scale, with one scale for both axes (shapes keep their aspect ratio): mean 0 and a larger
per-axis standard deviation of 2, as the study's data sets have. The transform is stored with the
run; samples, figures and metrics come back in the data's own units.
"""

from __future__ import annotations

import csv
import hashlib
import io
import zipfile
import zlib
from pathlib import Path
from typing import Literal

import numpy as np

from gridnoise.errors import DataError

SUFFIXES = (".npy", ".npz", ".csv", ".tsv", ".txt")
MIN_ROWS = 16  # fewer points than this cannot train or be evaluated (the KL estimate needs k + 1)
STUDY_BOX = 8.0  # data inside [-8, 8]^2 ...
STUDY_MIN_STD = 0.25  # ... whose larger per-axis std is at least this is left in its own units (auto)
TARGET_STD = 2.0  # standardised data: mean 0, larger per-axis std 2

Standardize = Literal["auto", "always", "never"]


def is_data_file(name: str) -> bool:
    """Whether a data set name is a file path (by its suffix)."""
    return Path(name).suffix.lower() in SUFFIXES


def sha256(path: str | Path) -> str:
    """The file's sha256, so a study knows when its data changed."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_points(path: str | Path, key: str = "", columns: list[str] | None = None) -> np.ndarray:
    """The points of a data file as a float64 `(N, 2)` array, checked: numeric, finite, 2 columns,
    at least MIN_ROWS rows."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file not found: {path} - check the path")
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise DataError(f"{path}: unknown data file type '{suffix}': use one of {', '.join(SUFFIXES)}")
    if suffix == ".npy":
        points = _numeric(_read_npy(path), path)
    elif suffix == ".npz":
        points = _numeric(_read_npz(path, key), path)
    else:
        points = _read_text(path, columns or [])
    return check_points(points, str(path))


def check_points(points: np.ndarray, source: str = "the array") -> np.ndarray:
    """`points` as float64 `(N, 2)`, or a DataError saying what is wrong with them."""
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[1] != 2:
        what = "one column" if points.ndim == 1 or (points.ndim == 2 and points.shape[1] == 1) else \
            f"shape {points.shape}"
        raise DataError(f"{source}: has {what}, but a data set is (N, 2) points: x and y")
    if not np.issubdtype(points.dtype, np.number) or np.issubdtype(points.dtype, np.complexfloating):
        raise DataError(f"{source}: is not numeric ({points.dtype})")
    points = points.astype(np.float64)
    bad = ~np.isfinite(points).all(axis=1)
    if bad.any():
        row = int(np.argmax(bad))
        raise DataError(f"{source}: a NaN or infinite value at row {row + 1} ({points[row].tolist()}): "
                        "drop or fix those rows")
    if len(points) < MIN_ROWS:
        raise DataError(f"{source}: has {len(points)} rows, fewer than the {MIN_ROWS} a data set needs")
    check_distinct(points, source)
    return points


def check_distinct(points: np.ndarray, source: str) -> None:
    """A DataError when every point is the same one: no spread to learn or to measure against.
    (Repeated rows are fine otherwise: see docs/ties.md for how the metrics treat them.)"""
    if len(points) and (points == points[0]).all():
        raise DataError(f"{source}: all {len(points)} rows are the same point {points[0].tolist()}: a data set "
                        "needs at least two distinct points")


def standardization(points: np.ndarray, mode: Standardize = "auto") -> tuple[list[float], float]:
    """(shift, scale) taking `points` to the model's scale: x_model = (x - shift) / scale.

    "never" and "auto" on data within [-8, 8]^2 with a larger per-axis std >= 0.25 give the identity.
    """
    std = float(points.std(axis=0).max())
    near = np.abs(points).max() <= STUDY_BOX and std >= STUDY_MIN_STD
    if mode == "never" or (mode == "auto" and near) or std == 0:
        return [0.0, 0.0], 1.0
    return points.mean(axis=0).tolist(), std / TARGET_STD


def to_model(points: np.ndarray, shift: list[float], scale: float) -> np.ndarray:
    """Data units -> the model's: (x - shift) / scale; the identity leaves the array untouched."""
    if not shift or (list(shift) == [0.0, 0.0] and scale == 1.0):
        return points
    return ((points - np.asarray(shift)) / scale).astype(points.dtype)


def to_data(points: np.ndarray, shift: list[float], scale: float) -> np.ndarray:
    """The model's units -> the data's: x scale + shift (`to_model`'s inverse)."""
    if not shift or (list(shift) == [0.0, 0.0] and scale == 1.0):
        return points
    return (points * scale + np.asarray(shift)).astype(points.dtype)


def extent_to_data(extent, shift: list[float], scale: float) -> list[float]:
    """A grid's (xmin, xmax, ymin, ymax) in the model's units, in the data's."""
    xmin, xmax, ymin, ymax = (float(v) for v in extent)
    if not shift:
        return [xmin, xmax, ymin, ymax]
    return [xmin * scale + shift[0], xmax * scale + shift[0], ymin * scale + shift[1], ymax * scale + shift[1]]


def _numeric(array: np.ndarray, path: Path) -> np.ndarray:
    if array.dtype == object or not np.issubdtype(array.dtype, np.number):
        raise DataError(f"{path}: is not numeric ({array.dtype})")
    return array


# what numpy and zipfile raise for a truncated, foreign or damaged .npy/.npz file
NUMPY_READ_ERRORS = (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error)
HOW_TO_SAVE = "write it again with numpy.save (.npy) or numpy.savez (.npz), an (N, 2) array of numbers"


def _read_npy(path: Path) -> np.ndarray:
    _check_not_empty(path)
    try:
        return np.load(path, allow_pickle=False)
    except NUMPY_READ_ERRORS as e:
        raise DataError(f"{path}: not a readable .npy array, truncated or not written by numpy ({type(e).__name__}: "
                        f"{_first(e)}) - {HOW_TO_SAVE}") from None


def _read_npz(path: Path, key: str) -> np.ndarray:
    _check_not_empty(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            names = list(archive.files)
            if key:
                if key not in names:
                    raise DataError(f"{path}: has no array '{key}': choose --data-key from {', '.join(names)}")
                return archive[key]
            if len(names) != 1:
                raise DataError(f"{path}: holds {len(names)} arrays ({', '.join(names)}): choose one with --data-key")
            return archive[names[0]]
    except DataError:
        raise
    except NUMPY_READ_ERRORS as e:
        raise DataError(f"{path}: not a readable .npz archive, truncated or not written by numpy "
                        f"({type(e).__name__}: {_first(e)}) - {HOW_TO_SAVE}") from None


def _check_not_empty(path: Path) -> None:
    if path.stat().st_size == 0:
        raise DataError(f"{path}: is empty (0 bytes): {HOW_TO_SAVE}")


def _read_text(path: Path, columns: list[str]) -> np.ndarray:
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: is not UTF-8 text (byte {e.start}): save it as UTF-8") from None
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ("," if path.suffix.lower() == ".csv" else None)
    rows = [row for row in _split(text, delimiter) if row]
    if not rows:
        raise DataError(f"{path}: is empty")
    header = None if all(_is_number(cell) for cell in rows[0]) else [cell.strip() for cell in rows[0]]
    body = rows[1:] if header is not None else rows
    if not body:
        raise DataError(f"{path}: has a header but no rows: a data file holds one point per line, x and y")
    width = max(len(row) for row in body) if body else 0
    picked = _pick_columns(path, header, width, columns, body)
    points = np.empty((len(body), 2))
    for r, row in enumerate(body):
        for c, index in enumerate(picked):
            line = r + 1 + (header is not None)
            cell = row[index].strip() if index < len(row) else ""
            if not cell:
                raise DataError(f"{path}: line {line} has no value in column {index} (is the file truncated?): "
                                "fix or drop that line")
            try:
                points[r, c] = float(cell)
            except ValueError:
                raise DataError(f"{path}: line {line} has a non-numeric value '{cell[:20]}' in column "
                                f"{index}: a data file holds numbers") from None
    return points


def _pick_columns(path: Path, header: list[str] | None, width: int, columns: list[str],
                  body: list[list[str]]) -> list[int]:
    """The 0-based indices of the x and y columns."""
    if columns:
        if len(columns) != 2:
            raise DataError(f"{path}: --columns names x and y, two columns (got {', '.join(columns)})")
        picked = []
        for name in columns:
            if header is not None and name in header:
                picked.append(header.index(name))
            elif name.isdigit() and int(name) < width:
                picked.append(int(name))
            else:
                known = f"its header has {', '.join(header)}" if header else f"it has {width} columns (0-based)"
                raise DataError(f"{path}: no column '{name}': {known}")
        return picked
    if width == 2:
        return [0, 1]
    # a numeric column: most of its first 100 cells are numbers (a stray bad cell is reported by line later)
    sample = body[:100]
    numeric = [c for c in range(width)
               if sum(c < len(row) and _is_number(row[c]) for row in sample) > len(sample) / 2]
    if len(numeric) == 1 or width == 1:
        raise DataError(f"{path}: has one numeric column, but a data set is (N, 2) points: x and y")
    if len(numeric) != 2:
        raise DataError(f"{path}: has {len(numeric)} numeric columns: choose x and y with --columns x,y")
    return numeric


def _split(text: str, delimiter: str | None) -> list[list[str]]:
    if delimiter is None:
        return [line.replace(",", " ").split() for line in text.splitlines()]
    return list(csv.reader(io.StringIO(text), delimiter=delimiter))


def _is_number(cell: str) -> bool:
    try:
        float(cell)
        return True
    except ValueError:
        return False


def _first(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0][:200] if lines else ""
