"""Variants that are not what their names say: grids that coincide, and grids that never moved.

- **Same cells.** A grid only tells points apart by their cells, and points outside its extent are
  clamped into edge cells. On `circle` under the original [-1, 1]^2 extent nearly every point is
  clamped to a corner, so a 10x10 and a 20x20 grid hold the same points together: on this data they
  are one grid. `cell_agreement` measures how far two runs' cells hold the same points together (1:
  the same partition of the data). A pair is flagged only when its grids differ over their own
  extent (`LATTICE` points there agree less than `SAME_CELLS`): a multi-scale grid whose 20x20 fine
  cells nest in its coarse ones partitions the plane as a 20x20 grid does by design, which the data
  does not cause and the report need not repeat.
- **Inactive grids.** A grid whose values stay at one constant (variance below
  `INACTIVE_VARIANCE` on every seed, e.g. an L1 penalty pinning a fine grid at g = 1) adds nothing:
  a multi-scale run with an inactive fine grid is a coarse-grid-only model.

`degeneracy_notes` says both next to a run's numbers.
"""

from __future__ import annotations

import numpy as np
import torch

from gridnoise.adaptation import Grid
from gridnoise.rundir import final_snapshot, read_config, read_grid_snapshot
from gridnoise.study.results import StudyResults

SAME_CELLS = 0.95  # two runs whose cells agree on at least this share of points are flagged
INACTIVE_VARIANCE = 1e-10  # a grid's variance below this on every seed: g is one constant (to ~1e-5)
LATTICE = 101  # points per side of the lattice over the grids' extent that tells two grids' layouts apart


def cell_labels(points: torch.Tensor, grids: dict[str, int], extent: list[float]) -> np.ndarray:
    """One label `(N,)` per point: the tuple of its cells in every grid (`{label: size}`) over `extent`."""
    label = np.zeros(len(points), dtype=np.int64)
    for size in grids.values():
        i, j = Grid(1, size, extent).cell_index(points)
        label = label * size * size + (i * size + j).numpy()
    return label


def cell_agreement(a: np.ndarray, b: np.ndarray) -> float:
    """How far two labellings of the same points hold the same points together, in [0, 1]: the share
    of points in the largest overlap of their cell in `a` with a cell of `b`, and the same the other
    way round; the smaller of the two (1: the same partition, whatever the labels)."""
    def covered(x: np.ndarray, y: np.ndarray) -> float:
        pairs = np.unique(np.stack([x, y]), axis=1, return_counts=True)
        (cells, _), counts = pairs
        best: dict[int, int] = {}
        for cell, count in zip(cells.tolist(), counts.tolist()):
            best[cell] = max(best.get(cell, 0), count)
        return sum(best.values()) / len(x)

    return min(covered(a, b), covered(b, a))


def _grid_layout(results: StudyResults, run: str, dataset: str) -> tuple[dict[str, int], list[float]] | None:
    """A run's final grids as ({label: size}, extent) (its first finished seed), None without grids."""
    seeds = results.seeds(run, dataset)
    if not seeds:
        return None
    directory = results.run_dir(run, dataset, seeds[0])
    snapshot = final_snapshot(directory)
    if snapshot is None:
        return None
    _, grids, extent = read_grid_snapshot(snapshot, read_config(directory))
    return {name: g.shape[-1] for name, g in grids.items()}, [float(e) for e in extent]


def _lattice(extents: list[list[float]]) -> torch.Tensor:
    """`(LATTICE**2, 2)` points evenly over the box holding every extent [x0, x1, y0, y1]."""
    x0, y0 = min(e[0] for e in extents), min(e[2] for e in extents)
    x1, y1 = max(e[1] for e in extents), max(e[3] for e in extents)
    xs, ys = torch.meshgrid(torch.linspace(x0, x1, LATTICE), torch.linspace(y0, y1, LATTICE), indexing="ij")
    return torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=1)


def layouts_differ(a: tuple[dict[str, int], list[float]], b: tuple[dict[str, int], list[float]]) -> bool:
    """Whether two grid layouts ({label: size}, extent) partition the plane differently over their
    extents: their cells agree on fewer than SAME_CELLS of a lattice of points there."""
    lattice = _lattice([a[1], b[1]])
    return cell_agreement(cell_labels(lattice, *a), cell_labels(lattice, *b)) < SAME_CELLS


def same_cells(results: StudyResults, dataset: str, points: torch.Tensor) -> list[tuple[str, str, float]]:
    """(run, other run, agreement) for each pair of grid runs whose cells agree on >= SAME_CELLS of the
    data's points (`points`: the data set in the model's units) although over their own extent they
    do not."""
    layouts = {r["name"]: layout for r in results.runs
               if (layout := _grid_layout(results, r["name"], dataset)) is not None}
    cells = {name: cell_labels(points, grids, extent) for name, (grids, extent) in layouts.items()}
    names = list(layouts)
    found = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            if (agreement := cell_agreement(cells[a], cells[b])) < SAME_CELLS:
                continue
            if layouts_differ(layouts[a], layouts[b]):
                found.append((a, b, agreement))
    return found


def inactive_grids(results: StudyResults, run: str, dataset: str) -> list[tuple[str, float]]:
    """(grid, its largest variance over seeds) of each grid of a run whose variance stays below
    INACTIVE_VARIANCE on every seed (`<grid>_variance` in metrics.json)."""
    names = {k for key, m in results.metrics.items() if key[:2] == (run, dataset) for k in m
             if k.endswith("grid_variance")}
    found = []
    for name in sorted(names):
        values = list(results.values(run, dataset, name).values())
        if values and max(values) < INACTIVE_VARIANCE:
            found.append((name[: -len("_variance")].replace("_", " "), max(values)))
    return found


def degeneracy_notes(results: StudyResults, data: dict[str, torch.Tensor]) -> dict[tuple[str, str], list[str]]:
    """(run, data set) -> what to say next to its numbers: which other runs' grids hold the same points
    together, and which of its grids are inactive. `data`: each data set in the model's units."""
    notes: dict[tuple[str, str], list[str]] = {}
    for dataset, points in data.items():
        for a, b, agreement in same_cells(results, dataset, points):
            for one, other in ((a, b), (b, a)):
                notes.setdefault((one, dataset), []).append(
                    f"same cells as {other} for {agreement:.0%} of points, though their grids differ: "
                    "on this data one grid")
        for run in results.runs:
            for grid, variance in inactive_grids(results, run["name"], dataset):
                notes.setdefault((run["name"], dataset), []).append(
                    f"{grid} inactive (variance at most {variance:.1e} < {INACTIVE_VARIANCE:g}): a model without it")
    return notes

