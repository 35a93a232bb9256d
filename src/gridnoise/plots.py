"""Figures drawn from saved results; nothing here trains. Every function returns a figure."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display is needed or assumed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from gridnoise.files import atomic_write  # noqa: E402

POINT_COLOUR = "#e8000b"  # data overlaid on heatmaps: visible on viridis and on white


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
        ax.scatter(points[:, 0], points[:, 1], s=1, c=POINT_COLOUR, alpha=0.3, linewidths=0)
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


# -- study figures (SYSTEM.md section 6) -------------------------------------------------------

PALETTE = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c"]
FINAL_GRID_TIMESTEPS = (0, 25, 50, 75, 99)
METRIC_PANELS = (("eval_loss", "Eval loss"), ("kl_divergence", "KL divergence (bits)"),
                 ("training_time", "Training time (s)"), ("inference_time", "Inference time (s)"))


def run_colours(results) -> dict[str, str]:
    """One fixed colour per run, by its order in the experiment, used by every figure."""
    return {r["name"]: PALETTE[i % len(PALETTE)] for i, r in enumerate(results.runs)}


def _panels(n: int, ncols: int = 2, size: float = 4.5):
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * 0.8 * nrows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def train_loss_figure(results) -> Figure:
    """One panel per data set, one smoothed loss curve per run (mean over seeds, band = range)."""
    from gridnoise.run import LOSSES_FILE
    from gridnoise.stats import smooth

    colours = run_colours(results)
    fig, axes = _panels(len(results.datasets))
    for ax, dataset in zip(axes, results.datasets):
        for run in results.runs:
            curves = []
            for seed in results.seeds(run["name"], dataset):
                with np.load(results.run_dir(run["name"], dataset, seed) / LOSSES_FILE) as f:
                    curves.append(smooth(f["loss"]))
            if not curves:
                continue
            length = min(len(c) for c in curves)
            stack = np.stack([c[:length] for c in curves])
            steps = np.arange(1, length + 1)
            ax.plot(steps, stack.mean(0), color=colours[run["name"]], label=run["label"], lw=1.2)
            if len(curves) > 1:
                ax.fill_between(steps, stack.min(0), stack.max(0), color=colours[run["name"]], alpha=0.2, lw=0)
        ax.set(title=dataset, xlabel="training step", ylabel="loss (moving average)")
    axes[0].legend(fontsize=8)
    fig.suptitle("Training loss")
    fig.tight_layout()
    return fig


def generated_images_figure(results, seed: int | None = None) -> Figure:
    """Rows = runs, columns = data sets: scatter plots of samples (the first seed by default)."""
    from gridnoise.run import SAMPLES_FILE

    colours = run_colours(results)
    nrows, ncols = len(results.runs), len(results.datasets)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3 * ncols, 3 * nrows), squeeze=False)
    for i, run in enumerate(results.runs):
        for j, dataset in enumerate(results.datasets):
            ax = axes[i, j]
            seeds = results.seeds(run["name"], dataset)
            chosen = seed if seed in seeds else (seeds[0] if seeds else None)
            if chosen is not None:
                with np.load(results.run_dir(run["name"], dataset, chosen) / SAMPLES_FILE) as f:
                    pts = f["samples"]
                ax.scatter(pts[:, 0], pts[:, 1], s=0.5, alpha=0.4, color=colours[run["name"]], linewidths=0)
            ax.set_aspect("equal", adjustable="datalim")
            if i == 0:
                ax.set_title(dataset)
            if j == 0:
                ax.set_ylabel(run["label"])
    fig.suptitle("Generated samples")
    fig.tight_layout()
    return fig


def _bars(ax, results, metric: str, runs: list[dict]) -> None:
    """Grouped bars: data sets on x, one bar per run, error bars = 95% CI over seeds."""
    from gridnoise.stats import confidence_interval

    colours = run_colours(results)
    width = 0.8 / max(len(runs), 1)
    for k, run in enumerate(runs):
        means, errors = [], []
        for dataset in results.datasets:
            vals = list(results.values(run["name"], dataset, metric).values())
            if not vals:
                means.append(np.nan), errors.append(0.0)
                continue
            mean, lo, hi = confidence_interval(vals)
            means.append(mean), errors.append(0.0 if np.isnan(lo) else hi - mean)
        x = np.arange(len(results.datasets)) + (k - (len(runs) - 1) / 2) * width
        ax.bar(x, means, width, yerr=errors, capsize=2, color=colours[run["name"]], label=run["label"])
    ax.set_xticks(np.arange(len(results.datasets)), results.datasets)


def evaluation_metrics_figure(results) -> Figure:
    """2x2 bars: eval loss, KL, training time and inference time per data set and run."""
    fig, axes = _panels(len(METRIC_PANELS), size=5)
    for ax, (metric, title) in zip(axes, METRIC_PANELS):
        _bars(ax, results, metric, results.runs)
        ax.set(title=title, ylabel=title)
    axes[0].legend(fontsize=8)
    n = max((len(results.seeds(r["name"], d)) for r in results.runs for d in results.datasets), default=0)
    fig.suptitle(f"Evaluation metrics (error bars: 95% CI over {n} seeds)" if n > 1 else "Evaluation metrics")
    fig.tight_layout()
    return fig


def grid_variance_figure(results) -> Figure:
    """Coarse and fine grid variance side by side for the runs that have both grids."""
    runs = [r for r in results.runs
            if any(results.values(r["name"], d, "fine_grid_variance") for d in results.datasets)]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric, title in zip(axes, ("coarse_grid_variance", "fine_grid_variance"),
                                 ("Coarse grid variance", "Fine grid variance")):
        _bars(ax, results, metric, runs)
        ax.set(title=title, ylabel="variance of grid values")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def final_grids_figure(values: dict[str, np.ndarray], extent, timesteps=FINAL_GRID_TIMESTEPS,
                       points: np.ndarray | None = None, title: str = "") -> Figure:
    """Rows = grids (and their product when there are several), columns = timesteps.

    Each heatmap sits at the grid's real extent with `origin="lower"`; the axes span the data
    as well, so one sees how much of the data the grid covers.
    """
    rows = dict(values)
    if len(values) > 1:
        # All grids share the extent, so each cell is an exact block of the lcm-resolution lattice.
        n = math.lcm(*(g.shape[1] for g in values.values()))
        rows["combined"] = np.prod([g.repeat(n // g.shape[1], 1).repeat(n // g.shape[1], 2)
                                    for g in values.values()], axis=0)
    T = next(iter(values.values())).shape[0]
    cols = sorted({min(t, T - 1) for t in timesteps})
    xmin, xmax, ymin, ymax = (float(v) for v in extent)
    lims = [xmin, xmax, ymin, ymax]
    if points is not None:
        lims = [min(xmin, points[:, 0].min()), max(xmax, points[:, 0].max()),
                min(ymin, points[:, 1].min()), max(ymax, points[:, 1].max())]
    fig, axes = plt.subplots(len(rows), len(cols), figsize=(2.8 * len(cols) + 1, 2.8 * len(rows)), squeeze=False,
                             layout="constrained")
    for i, (label, grid) in enumerate(rows.items()):
        vmin, vmax = float(grid[cols].min()), float(grid[cols].max())
        for j, t in enumerate(cols):
            ax = axes[i, j]
            image = ax.imshow(grid[t].T, origin="lower", extent=(xmin, xmax, ymin, ymax), cmap="viridis",
                              vmin=vmin, vmax=vmax, interpolation="nearest", aspect="auto")
            if points is not None:
                ax.scatter(points[:, 0], points[:, 1], s=0.3, c=POINT_COLOUR, alpha=0.3, linewidths=0)
            ax.set_xlim(lims[0], lims[1]), ax.set_ylim(lims[2], lims[3])
            ax.set_title(f"{label.replace('_', ' ')}, t={t}", fontsize=9)
            ax.tick_params(labelsize=7)
        bar = fig.colorbar(image, ax=list(axes[i]), fraction=0.02, pad=0.01)
        bar.formatter.set_useOffset(False)  # factors near 1 read as 1.0002, not "+1" and 0.0002
    fig.suptitle(title)
    return fig


def make_figures(results, dest: str | Path) -> list[Path]:
    """Write every study figure into `dest` and redraw each finished task's per-step heatmaps."""
    from gridnoise import data as datasets
    from gridnoise.run import GRIDS_DIR, HEATMAPS_DIR, draw_heatmaps, read_config

    dest = Path(dest)
    written = [
        save_figure(train_loss_figure(results), dest / "train_loss.png"),
        save_figure(generated_images_figure(results), dest / "generated_images.png"),
        save_figure(evaluation_metrics_figure(results), dest / "evaluation_metrics.png"),
    ]
    if results.metrics and any("fine_grid_variance" in m for m in results.metrics.values()):
        written.append(save_figure(grid_variance_figure(results), dest / "grid_variance_comparison.png"))
    for run in results.runs:
        for dataset in results.datasets:
            seeds = results.seeds(run["name"], dataset)
            if not seeds:
                continue
            run_dir = results.run_dir(run["name"], dataset, seeds[0])
            snapshots = sorted((run_dir / GRIDS_DIR).glob("grids_step_*.npz"),
                               key=lambda p: int(p.stem.rsplit("_", 1)[1]))
            if not snapshots:
                continue
            for seed in seeds:  # per-step heatmaps: drawn at training time, redrawn if missing
                if not any((results.run_dir(run["name"], dataset, seed) / HEATMAPS_DIR).glob("*.png")):
                    draw_heatmaps(results.run_dir(run["name"], dataset, seed))
            cfg = read_config(run_dir)
            with np.load(snapshots[-1], allow_pickle=False) as snap:
                grids = {k: snap[k] for k in snap.files if k != "t"}
            points = datasets.load(dataset, 5000, seed=cfg.data_seed)
            fig = final_grids_figure(grids, cfg.adaptation.extent, points=points,
                                     title=f"{run['label']} on {dataset}: final grids (seed {seeds[0]})")
            written.append(save_figure(fig, dest / "final_grids" / f"{run['name']}_{dataset}.png"))
    return written
