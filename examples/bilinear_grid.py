"""A worked adaptation plug-in: x_t-conditioned grids with a smooth g.

`ConditioningGridAdaptation` gives the denoiser the value of the grid cell x_t falls in, so g jumps
at every cell border. Here g is interpolated bilinearly between cell centres instead: the same
(T, n, n) parameters, a continuous g. Use it from a config or an experiment file with

    [adaptation]
    kind = "bilinear_grid:BilinearGridAdaptation"

and this directory on PYTHONPATH (or the module installed), e.g.
`PYTHONPATH=examples gridnoise run examples/bilinear.toml --out results/bilinear`.
"""

from __future__ import annotations

from torch import Tensor

from gridnoise.adaptation import ConditioningGridAdaptation, Grid, NoiseAdaptation


def bilinear(grid: Grid, points: Tensor, timesteps: Tensor) -> Tensor:
    """The grid's values `(T, n, n)` at `points` `(B, 2)`, interpolated between cell centres `(B,)`.

    Cell (i, j) has its centre at continuous coordinate (i, j); outside the outermost centres the
    value is held constant, as the nearest-cell lookup clamps to the border cells.
    """
    xmin, xmax, ymin, ymax = grid.extent.unbind()
    n = grid.size
    u = ((points[:, 0] - xmin) / (xmax - xmin) * n - 0.5).clamp(0, n - 1)
    v = ((points[:, 1] - ymin) / (ymax - ymin) * n - 0.5).clamp(0, n - 1)
    i0, j0 = u.floor().long().clamp(max=max(n - 2, 0)), v.floor().long().clamp(max=max(n - 2, 0))
    i1, j1 = (i0 + 1).clamp(max=n - 1), (j0 + 1).clamp(max=n - 1)
    fu, fv = u - i0, v - j0
    values = grid.values
    # lerp form: exactly the cell value wherever the four neighbours agree (all-ones grids give g = 1)
    below = values[timesteps, i0, j0] + fu * (values[timesteps, i1, j0] - values[timesteps, i0, j0])
    above = values[timesteps, i0, j1] + fu * (values[timesteps, i1, j1] - values[timesteps, i0, j1])
    return below + fv * (above - below)


class BilinearGridAdaptation(ConditioningGridAdaptation):
    """`ConditioningGridAdaptation` with g bilinear between cell centres: a smooth noise scale."""

    def noise_scale(self, points: Tensor, timesteps: Tensor) -> Tensor:
        first, *rest = self.named_grids().values()
        g = bilinear(first, points, timesteps)
        for grid in rest:
            g = g * bilinear(grid, points, timesteps)
        return g

    def field_edges(self) -> tuple[Tensor, Tensor]:
        """None: g is continuous, so the ODE likelihood has no cell-edge jumps to add."""
        return NoiseAdaptation.field_edges(self)
