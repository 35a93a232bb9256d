"""Figures drawn from saved results; nothing here trains. Every function returns a figure."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display is needed or assumed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from gridnoise.files import atomic_write  # noqa: E402


def grid_heatmap(values: np.ndarray, extent, title: str = "", points: np.ndarray | None = None) -> Figure:
    """Heatmap of one timestep's grid `(n, n)` (axis 0 = x, axis 1 = y) over its real extent.

    Drawn with `origin="lower"` so x runs along the horizontal axis (the seed's figures were
    transposed); `points` `(N, 2)` are overlaid when given.
    """
    fig, ax = plt.subplots(figsize=(4.6, 4))
    xmin, xmax, ymin, ymax = (float(v) for v in extent)
    image = ax.imshow(np.asarray(values).T, origin="lower", extent=(xmin, xmax, ymin, ymax),
                      cmap="viridis", aspect="auto", interpolation="nearest")
    if points is not None:
        ax.scatter(points[:, 0], points[:, 1], s=1, c="white", alpha=0.3, linewidths=0)
    fig.colorbar(image, ax=ax, label="noise factor")
    ax.set(xlabel="x", ylabel="y", title=title)
    fig.tight_layout()
    return fig


def save_figure(fig: Figure, path: str | Path, dpi: int = 100) -> Path:
    """Write a figure atomically as PNG and close it."""
    try:
        return atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=dpi))
    finally:
        plt.close(fig)
