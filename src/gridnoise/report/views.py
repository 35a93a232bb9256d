"""What part of the plane, or of a metric's range, a figure shows; both renderers (the PNG figures
and report.html) read it here, so a view and its caveats are the same in either.

- A grid figure spans the grid's extent and the data (`grid_view`): a grid clamps points outside its
  extent into its edge cells, so the region outside (`clamped_strips`) is marked as clamped, not
  left for bright edge cells to look like learned structure.
- A panel of samples spans the data with a margin (`sample_view`), not a diverging sampler's
  +-1000; samples beyond it are drawn at its edge (`clip_to_view`) and counted.
- A panel of metric values spans the values that are not outlying (`outlying`), so one diverging
  run does not flatten the others; an outlying value is drawn at the axis's edge with its number.
"""

from __future__ import annotations

import numpy as np

Box = tuple[float, float, float, float]  # xmin, xmax, ymin, ymax

CLAMPED_NOTE = "outside the grid (dashed), clamped to edge cells"  # how figures label the hatched region
SAMPLE_MARGIN = 0.25  # a sample panel spans the data plus this fraction of its larger side on each side
SAMPLE_QUANTILE = 0.01  # without the data: each run's samples between these quantiles stand in for it
OUTLIER_FACTOR = 20.0  # a metric value this many typical magnitudes from the typical value is outlying


def grid_view(extent, points: np.ndarray | None) -> Box:
    """The limits of a grid figure: the grid's extent and, when given, every data point `(N, 2)`."""
    xmin, xmax, ymin, ymax = (float(v) for v in extent)
    if points is None or len(points) == 0:
        return xmin, xmax, ymin, ymax
    return (min(xmin, float(points[:, 0].min())), max(xmax, float(points[:, 0].max())),
            min(ymin, float(points[:, 1].min())), max(ymax, float(points[:, 1].max())))


def clamped_strips(extent, view: Box) -> list[Box]:
    """The rectangles of `view` outside the grid's `extent` (left, right, below, above; empty ones
    left out): where a grid's value is its nearest edge cell's, not one it learned there."""
    gx0, gx1, gy0, gy1 = (float(v) for v in extent)
    vx0, vx1, vy0, vy1 = view
    strips = [(vx0, gx0, vy0, vy1), (gx1, vx1, vy0, vy1), (gx0, gx1, vy0, gy0), (gx0, gx1, gy1, vy1)]
    return [s for s in strips if s[1] > s[0] and s[3] > s[2]]


def _square_around(box: Box, margin: float) -> Box:
    """A square centred on `box`, its side the box's larger side plus `margin` of it on each side."""
    xmin, xmax, ymin, ymax = box
    half = max(xmax - xmin, ymax - ymin, 1e-9) * (0.5 + margin)
    cx, cy = (xmin + xmax) / 2, (ymin + ymax) / 2
    return cx - half, cx + half, cy - half, cy + half


def sample_view(data: np.ndarray | None, samples: list[np.ndarray]) -> Box:
    """The square a data set's sample panels show: the data's bounding box plus SAMPLE_MARGIN.

    Without the data (a table not here), each run's samples between the SAMPLE_QUANTILE and
    1 - SAMPLE_QUANTILE quantiles give a box, and the lower median of those boxes by size stands in
    (with two runs the smaller), so a diverging sampler does not set it.
    """
    if data is not None and len(data):
        return _square_around((float(data[:, 0].min()), float(data[:, 0].max()),
                               float(data[:, 1].min()), float(data[:, 1].max())), SAMPLE_MARGIN)
    boxes = []
    for s in samples:
        finite = s[np.isfinite(s).all(axis=1)]
        if len(finite):
            lo, hi = np.quantile(finite, [SAMPLE_QUANTILE, 1 - SAMPLE_QUANTILE], axis=0)
            boxes.append((float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1])))
    if not boxes:
        return -1.0, 1.0, -1.0, 1.0
    boxes.sort(key=lambda b: max(b[1] - b[0], b[3] - b[2]))
    return _square_around(boxes[(len(boxes) - 1) // 2], SAMPLE_MARGIN)


def clip_to_view(points: np.ndarray, view: Box) -> tuple[np.ndarray, np.ndarray]:
    """(inside, clipped): which points `(N, 2)` lie within `view` `(N,)`, and where the others are
    drawn, moved onto its edge `(K, 2)` (a non-finite coordinate to the edge it runs towards, nan to
    the middle of the view)."""
    xmin, xmax, ymin, ymax = view
    x, y = points[:, 0], points[:, 1]
    with np.errstate(invalid="ignore"):
        inside = (x >= xmin) & (x <= xmax) & (y >= ymin) & (y <= ymax)
    centre = np.array([(xmin + xmax) / 2, (ymin + ymax) / 2])
    outside = np.where(np.isnan(points[~inside]), centre, points[~inside])
    clipped = np.column_stack([np.clip(outside[:, 0], xmin, xmax), np.clip(outside[:, 1], ymin, ymax)])
    return inside, clipped


def _lower_median(values: np.ndarray) -> float:
    return float(np.sort(values)[(len(values) - 1) // 2])


def typical_range(values) -> tuple[float, float]:
    """(lo, hi): the fence beyond which a panel's value (one per run) is outlying: the typical value
    plus or minus OUTLIER_FACTOR typical magnitudes (-inf, inf with fewer than two finite values).

    Typical value: the lower median m of the finite values (with two values the smaller one, as
    metrics diverge upwards). Typical magnitude: the larger of |m| and the lower median of
    |value - m|. At least half the values lie inside.
    """
    a = np.asarray(values, dtype=float)
    a = a[np.isfinite(a)]
    if len(a) < 2:
        return -np.inf, np.inf
    m = _lower_median(a)
    reach = OUTLIER_FACTOR * max(abs(m), _lower_median(np.abs(a - m)))
    return m - reach, m + reach


def outlying(values) -> np.ndarray:
    """Which of `values` (one per run) lie outside `typical_range`, too far from the rest to set a
    panel's axis (a run that diverged); nan is not outlying (it is not drawn), +-inf always is."""
    a = np.asarray(values, dtype=float)
    lo, hi = typical_range(a)
    with np.errstate(invalid="ignore"):
        return ~np.isnan(a) & ((a < lo) | (a > hi) | np.isinf(a))
