"""A GIF of the reverse process: 2-D samples moving from noise to data, one frame per step.

The axes stay fixed at the data's extent (+5%) and the data is drawn faintly for reference; for
grid variants the grid of the frame's timestep (the product of all grids, on their common lattice)
is drawn underneath, with one colour range and colorbar for the whole animation. Each frame names
its timestep.
"""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import torch
from PIL import Image

from gridnoise import data as datasets
from gridnoise import rundir
from gridnoise.adaptation import data_extent
from gridnoise.config import SamplerConfig
from gridnoise.data.datafile import extent_to_data, to_data
from gridnoise.files import atomic_write
from gridnoise.report.run_figures import _with_combined
from gridnoise.sampling import sample_run

DATA_POINTS = 2000  # data points drawn faintly in every frame


def reverse_process_frames(run_dir: str | Path, num_samples: int = 2000, seed: int | None = None,
                           sampler: SamplerConfig | None = None, device: str = "auto") -> list[tuple[int, np.ndarray]]:
    """(t, samples) from the starting noise (t = T) through every step of the run's sampler, in the
    model's units (`datafile.to_data` takes them to the data's)."""
    frames: list[tuple[int, np.ndarray]] = []
    sample_run(run_dir, num_samples, seed, device, sampler,
               callback=lambda t, x: frames.append((t, x.detach().cpu().numpy().copy())))
    return frames


def write_gif(run_dir: str | Path, out: str | Path, num_samples: int = 2000, seed: int | None = None,
              sampler: SamplerConfig | None = None, fps: int = 10, device: str = "auto") -> Path:
    """Render the run's reverse process to `out` (atomically); returns the path."""
    matplotlib.use("Agg")


    cfg = rundir.read_config(run_dir)
    points = datasets.run_points(cfg)  # everything is drawn in the data's own units
    xmin, xmax, ymin, ymax = data_extent(torch.from_numpy(points))
    # the grids the run samples with (EMA grids where the run averaged them)
    grids, grid_extent = _sampling_grids(Path(run_dir), cfg)
    if grid_extent is not None:
        grid_extent = extent_to_data(grid_extent, cfg.data.shift, cfg.data.scale)
    grid = _with_combined(grids).get("combined", next(iter(grids.values()), None)) if grids else None

    # one colour range for the whole animation, so a colour means the same g in every frame
    vmin, vmax = (float(grid.min()), float(grid.max())) if grid is not None else (0.0, 1.0)
    data = points[np.random.default_rng(0).permutation(len(points))[:DATA_POINTS]]
    T = cfg.diffusion.num_timesteps
    images = []
    for t, x in reverse_process_frames(run_dir, num_samples, seed, sampler, device):
        x = to_data(x, cfg.data.shift, cfg.data.scale)
        fig, ax = plt.subplots(figsize=(4.6, 4), dpi=80, layout="constrained")
        if grid is not None:
            image = ax.imshow(grid[min(t, len(grid) - 1)].T, origin="lower", extent=grid_extent, cmap="viridis",
                              vmin=vmin, vmax=vmax, alpha=0.6, aspect="auto")
            bar = fig.colorbar(image, ax=ax, fraction=0.05, pad=0.02)
            bar.set_label("noise scale g (product of grids)" if len(grids) > 1 else "noise scale g", fontsize=7)
            bar.formatter.set_useOffset(False)
            bar.ax.tick_params(labelsize=6)
        ax.scatter(data[:, 0], data[:, 1], s=1, c="#999999", alpha=0.25, linewidths=0)  # the data, for reference
        ax.scatter(x[:, 0], x[:, 1], s=1, c="black", alpha=0.5, linewidths=0)
        when = f"pure noise, t = T = {T}" if t >= T else f"after the step from t = {t} (T = {T})"
        ax.set(xlim=(xmin, xmax), ylim=(ymin, ymax))
        ax.set_title(f"{cfg.variant} on {Path(cfg.dataset).name}: {when}", fontsize=8)
        ax.tick_params(labelsize=6)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
        plt.close(fig)
        buffer.seek(0)
        images.append(Image.open(buffer).convert("P", palette=Image.Palette.ADAPTIVE))
    return atomic_write(out, lambda f: images[0].save(f, format="GIF", save_all=True, append_images=images[1:],
                                                      duration=int(1000 / fps), loop=0))


def _sampling_grids(run_dir: Path, cfg) -> tuple[dict[str, np.ndarray], list[float] | None]:
    """The grids `(T, n, n)` the run samples with, read from its checkpoint (the EMA grids where
    `train.ema_grids` averaged them), and their extent; empty for a run without grids."""
    if cfg.adaptation.kind == "none":
        return {}, None
    state = rundir.load_checkpoint(run_dir / rundir.CHECKPOINT_FILE, "cpu")
    raw = state["adaptation"]
    weights = {k[len("averaged."):]: v for k, v in state["ema_adaptation"].items()} \
        if "ema_adaptation" in state else raw
    grids = {k.split(".")[1]: v.numpy() for k, v in weights.items() if k.endswith(".values")}
    extents = [v.tolist() for k, v in raw.items() if k.endswith(".extent")]
    return (grids, extents[0]) if grids and extents else ({}, None)
