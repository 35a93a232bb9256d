"""Figures drawn from saved results; nothing here trains. Every `*_figure` function returns a Figure,
which `save_figure` writes; `make_figures` writes a whole study's figures."""

from __future__ import annotations

import math
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

if "ipykernel" not in sys.modules:  # files only, no display; a notebook keeps its inline backend
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from gridnoise import rundir  # noqa: E402
from gridnoise.config import DataConfig  # noqa: E402
from gridnoise.datafile import extent_to_data  # noqa: E402
from gridnoise.errors import GridnoiseError  # noqa: E402
from gridnoise.files import atomic_write  # noqa: E402

if TYPE_CHECKING:
    from gridnoise.results import StudyResults

POINT_COLOUR = "#e8000b"  # data overlaid on heatmaps: visible on viridis and on white


def grid_heatmap(values: np.ndarray, extent, title: str = "", points: np.ndarray | None = None) -> Figure:
    """Heatmap of one timestep's grid `(n, n)` (axis 0 = x, axis 1 = y) over its real extent.

    Drawn with `origin="lower"` so x runs along the horizontal axis (the original study's figures
    were transposed); `points` `(N, 2)` are overlaid when given.
    """
    fig, ax = plt.subplots(figsize=(4.6, 4))
    xmin, xmax, ymin, ymax = (float(v) for v in extent)
    image = ax.imshow(np.asarray(values).T, origin="lower", extent=(xmin, xmax, ymin, ymax),
                      cmap="viridis", aspect="auto", interpolation="nearest")
    if points is not None:
        ax.scatter(points[:, 0], points[:, 1], s=1, c=POINT_COLOUR, alpha=0.3, linewidths=0)
    fig.colorbar(image, ax=ax, label="noise scale g")
    ax.set(xlabel="x", ylabel="y", title=title)
    fig.tight_layout()
    return fig


def datasets_figure(points: dict[str, np.ndarray], columns: int = 4) -> Figure:
    """One scatter panel per data set `(N, 2)`, all on the same [-4.5, 4.5]^2 axes."""
    rows = (len(points) + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(SAMPLE_PANEL_SIZE * columns, SAMPLE_PANEL_SIZE * rows),
                             squeeze=False, layout="constrained")
    for ax in axes.flat[len(points):]:
        ax.set_visible(False)
    for ax, (name, pts) in zip(axes.flat, points.items()):
        ax.scatter(pts[:, 0], pts[:, 1], s=SAMPLE_POINT_SIZE, alpha=SAMPLE_ALPHA, color=PALETTE[0], linewidths=0)
        ax.set(xlim=(-4.5, 4.5), ylim=(-4.5, 4.5), title=name, aspect="equal")
        ax.tick_params(labelsize=7)
    return fig


def samples_figure(samples: np.ndarray, data: np.ndarray | None = None, title: str = "") -> Figure:
    """Samples `(N, 2)` over the data `(M, 2)` (faint grey), on the same axes."""
    fig, ax = plt.subplots(figsize=(4.5, 4.5), layout="constrained")
    if data is not None:
        ax.scatter(data[:, 0], data[:, 1], s=SAMPLE_POINT_SIZE, c="#bbbbbb", alpha=SAMPLE_ALPHA, linewidths=0,
                   label="data")
    ax.scatter(samples[:, 0], samples[:, 1], s=SAMPLE_POINT_SIZE, color=PALETTE[0], alpha=SAMPLE_ALPHA, linewidths=0,
               label="samples")
    ax.set(aspect="equal", xlabel="x", ylabel="y", title=title)
    return fig


def save_figure(fig: Figure, path: str | Path, dpi: int = 100) -> Path:
    """Write a figure atomically as PNG and close it."""
    try:
        return atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=dpi))
    finally:
        plt.close(fig)


def draw_heatmaps(run_dir: str | Path) -> list[Path]:
    """Draw every saved grid snapshot of a run as the original study's heatmap files (at its recorded timestep)."""
    run_dir = Path(run_dir)
    cfg = rundir.read_config(run_dir)
    written = []
    for path in rundir.grid_snapshots(run_dir):
        step = rundir.snapshot_step(path)
        t, grids, extent = rundir.read_grid_snapshot(path, cfg)
        extent = extent_to_data(extent, cfg.data.shift, cfg.data.scale)
        for label, values in grids.items():
            fig = grid_heatmap(values[t], extent, title=f"{cfg.dataset} {label.replace('_', ' ')}, t={t}, step {step}")
            written.append(save_figure(fig, rundir.heatmap_path(run_dir, cfg.dataset, label, step)))
    return written


# -- study figures: the original study's four, and the final grids ------------------------------

PALETTE = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c"]
FINAL_GRID_TIMESTEPS = (0, 25, 50, 75, 99)
METRIC_PANELS = (("eval_loss", "Eval loss"), ("kl_divergence", "KL divergence (bits)"),
                 ("training_time", "Training time (s)"), ("inference_time", "Inference time (s)"))
# Sample metrics that compare across variants; drawn when a study recorded them.
SAMPLE_METRIC_PANELS = (("w2", "Wasserstein-2"), ("mmd", "MMD^2 (RBF)"), ("precision", "Precision (k-NN)"),
                        ("recall", "Recall (k-NN)"))
VARIANCE_PANELS = (("coarse_grid_variance", "Coarse grid variance"), ("fine_grid_variance", "Fine grid variance"))
CI_LEVEL = 0.95  # error bars: t-interval of the mean over seeds
PANEL_COLUMNS = 2  # data sets and metrics are laid out two panels per row
PANEL_SIZE = 4.5  # inches per panel (width; height is PANEL_ASPECT of it)
PANEL_ASPECT = 0.8
SAMPLE_PANEL_SIZE = 3.0  # inches per scatter panel of generated samples
GRID_PANEL_SIZE = 2.8  # inches per heatmap of the final-grids figure
BAND_ALPHA = 0.2  # min..max band over seeds around the mean loss curve
SAMPLE_POINT_SIZE = 0.5
SAMPLE_ALPHA = 0.4
OVERLAY_POINT_SIZE = 0.3  # data drawn over the final grids
OVERLAY_ALPHA = 0.3
OVERLAY_POINTS = 5000  # data points drawn over each final-grids figure


def run_colours(results: StudyResults) -> dict[str, str]:
    """One fixed colour per run, by its order in the experiment, used by every figure."""
    return {r["name"]: PALETTE[i % len(PALETTE)] for i, r in enumerate(results.runs)}


def _panels(n: int, ncols: int = PANEL_COLUMNS, size: float = PANEL_SIZE) -> tuple[Figure, list]:
    """A figure with `n` visible panels laid out `ncols` per row (spare panels hidden)."""
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * PANEL_ASPECT * nrows), squeeze=False,
                             layout="constrained")
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def train_loss_figure(results: StudyResults) -> Figure:
    """One panel per data set, one smoothed loss curve per run (mean over seeds, band = min..max)."""
    from gridnoise.stats import SMOOTHING_WINDOW, smooth

    colours = run_colours(results)
    fig, axes = _panels(len(results.datasets))
    for ax, dataset in zip(axes, results.datasets):
        for run in results.runs:
            curves = []
            for seed in results.seeds(run["name"], dataset):
                curves.append(smooth(rundir.read_losses(results.run_dir(run["name"], dataset, seed))))
            if not curves:
                continue
            length = min(len(c) for c in curves)
            stack = np.stack([c[:length] for c in curves])
            steps = np.arange(1, length + 1)
            ax.plot(steps, stack.mean(0), color=colours[run["name"]], label=run["label"], lw=1.2)
            if len(curves) > 1:
                ax.fill_between(steps, stack.min(0), stack.max(0), color=colours[run["name"]], alpha=BAND_ALPHA,
                                lw=0)
        ax.set(title=dataset, xlabel="training step", ylabel=f"loss ({SMOOTHING_WINDOW}-step moving average)")
    if axes:
        axes[0].legend(fontsize=8)
    n = results.max_seeds()
    fig.suptitle(f"Training loss (mean over {n} seeds, band: min..max)" if n > 1 else "Training loss")
    return fig


def generated_images_figure(results: StudyResults, seed: int | None = None) -> Figure:
    """Rows = runs, columns = data sets: scatter plots of samples (the first finished seed by default)."""

    colours = run_colours(results)
    nrows, ncols = len(results.runs), len(results.datasets)
    fig, axes = plt.subplots(nrows, ncols, figsize=(SAMPLE_PANEL_SIZE * ncols, SAMPLE_PANEL_SIZE * nrows),
                             squeeze=False, layout="constrained")
    for i, run in enumerate(results.runs):
        for j, dataset in enumerate(results.datasets):
            ax = axes[i, j]
            seeds = results.seeds(run["name"], dataset)
            chosen = seed if seed in seeds else (seeds[0] if seeds else None)
            if chosen is not None:
                pts = rundir.read_samples(results.run_dir(run["name"], dataset, chosen))
                ax.scatter(pts[:, 0], pts[:, 1], s=SAMPLE_POINT_SIZE, alpha=SAMPLE_ALPHA, color=colours[run["name"]],
                           linewidths=0)
            ax.set_aspect("equal", adjustable="datalim")
            if i == 0:
                ax.set_title(dataset)
            if j == 0:
                ax.set_ylabel(f"{run['label']}\ny")
            if i == nrows - 1:
                ax.set_xlabel("x")
    fig.suptitle("Generated samples" + (f" (seed {seed})" if seed is not None else " (first seed)"))
    return fig


def _bars(ax, results: StudyResults, metric: str, runs: list[dict]) -> None:
    """Grouped bars: data sets on x, one bar per run, error bars = 95% CI over seeds (none with one seed)."""
    from gridnoise.stats import confidence_interval

    colours = run_colours(results)
    width = 0.8 / max(len(runs), 1)  # the bars of one data set fill 80% of its slot
    for k, run in enumerate(runs):
        means, errors = [], []
        for dataset in results.datasets:
            vals = list(results.values(run["name"], dataset, metric).values())
            mean, lo, hi = confidence_interval(vals, CI_LEVEL) if vals else (np.nan, np.nan, np.nan)
            means.append(mean)
            errors.append(0.0 if np.isnan(lo) else hi - mean)
        x = np.arange(len(results.datasets)) + (k - (len(runs) - 1) / 2) * width
        ax.bar(x, means, width, yerr=errors if any(errors) else None, capsize=2, color=colours[run["name"]],
               label=run["label"])
    ax.set_xticks(np.arange(len(results.datasets)), results.datasets)
    ax.set_xlabel("data set")


def evaluation_metrics_figure(results: StudyResults) -> Figure:
    """Bars per data set and run: eval loss, KL, training and inference time (the original study's 2x2),
    then W2, MMD, precision and recall when the study recorded them."""
    recorded = results.metric_names()
    panels = METRIC_PANELS + tuple(p for p in SAMPLE_METRIC_PANELS if p[0] in recorded)
    fig, axes = _panels(len(panels), size=5)
    for ax, (metric, title) in zip(axes, panels):
        _bars(ax, results, metric, results.runs)
        ax.set(title=title, ylabel=title)
    axes[0].legend(fontsize=8)
    n = results.max_seeds()
    fig.suptitle(f"Evaluation metrics (error bars: 95% CI over {n} seeds)" if n > 1 else "Evaluation metrics")
    return fig


def grid_variance_figure(results: StudyResults) -> Figure:
    """Coarse and fine grid variance side by side for the runs that have both grids."""
    runs = [r for r in results.runs
            if any(results.values(r["name"], d, "fine_grid_variance") for d in results.datasets)]
    fig, axes = _panels(len(VARIANCE_PANELS), size=5)
    for ax, (metric, title) in zip(axes, VARIANCE_PANELS):
        _bars(ax, results, metric, runs)
        ax.set(title=title, ylabel="variance of grid values")
    if runs:
        axes[0].legend(fontsize=8)
    n = results.max_seeds()
    fig.suptitle("Noise adaptation effectiveness: variance of the learned grid values"
                 + (f" (error bars: 95% CI over {n} seeds)" if n > 1 else ""))
    return fig


def _with_combined(values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The grids plus, when there are several, their product ("combined") on a common lattice.

    All grids share the extent, so each cell is an exact block of the lcm-resolution lattice.
    """
    rows = dict(values)
    if len(values) > 1:
        n = math.lcm(*(g.shape[1] for g in values.values()))
        rows["combined"] = np.prod([g.repeat(n // g.shape[1], 1).repeat(n // g.shape[1], 2)
                                    for g in values.values()], axis=0)
    return rows


def _view_limits(extent, points: np.ndarray | None) -> tuple[float, float, float, float]:
    """Axis limits covering the grid's extent and, when given, every data point."""
    xmin, xmax, ymin, ymax = (float(v) for v in extent)
    if points is None or len(points) == 0:
        return xmin, xmax, ymin, ymax
    return (min(xmin, float(points[:, 0].min())), max(xmax, float(points[:, 0].max())),
            min(ymin, float(points[:, 1].min())), max(ymax, float(points[:, 1].max())))


def final_grids_figure(values: dict[str, np.ndarray], extent, timesteps=FINAL_GRID_TIMESTEPS,
                       points: np.ndarray | None = None, title: str = "") -> Figure:
    """Rows = grids `(T, n, n)` (and their product when there are several), columns = timesteps.

    Each heatmap sits at the grid's real extent with `origin="lower"`; the axes
    span the data as well, so one sees how much of the data the grid covers. One colorbar per row.
    """
    rows = _with_combined(values)
    T = next(iter(values.values())).shape[0]
    cols = sorted({min(int(t), T - 1) for t in timesteps})
    xmin, xmax, ymin, ymax = (float(v) for v in extent)
    lims = _view_limits(extent, points)
    fig, axes = plt.subplots(len(rows), len(cols), figsize=(GRID_PANEL_SIZE * len(cols) + 1,
                                                            GRID_PANEL_SIZE * len(rows)),
                             squeeze=False, layout="constrained")
    for i, (label, grid) in enumerate(rows.items()):
        vmin, vmax = float(grid[cols].min()), float(grid[cols].max())
        for j, t in enumerate(cols):
            ax = axes[i, j]
            image = ax.imshow(grid[t].T, origin="lower", extent=(xmin, xmax, ymin, ymax), cmap="viridis",
                              vmin=vmin, vmax=vmax, interpolation="nearest", aspect="auto")
            if points is not None:
                ax.scatter(points[:, 0], points[:, 1], s=OVERLAY_POINT_SIZE, c=POINT_COLOUR, alpha=OVERLAY_ALPHA,
                           linewidths=0)
            ax.set_xlim(lims[0], lims[1])
            ax.set_ylim(lims[2], lims[3])
            ax.set_title(f"{label.replace('_', ' ')}, t={t}", fontsize=9)
            ax.tick_params(labelsize=7)
            if i == len(rows) - 1:
                ax.set_xlabel("x", fontsize=8)
            if j == 0:
                ax.set_ylabel("y", fontsize=8)
        bar = fig.colorbar(image, ax=list(axes[i]), fraction=0.02, pad=0.01)
        bar.set_label("noise scale g", fontsize=8)
        bar.formatter.set_useOffset(False)  # type: ignore[attr-defined]  # factors near 1 read as 1.0002, not "+1" and 0.0002
    fig.suptitle(title)
    return fig


def overlay_points(dataset: str, data_seed: int, data: DataConfig | None = None) -> np.ndarray | None:
    """Up to OVERLAY_POINTS points of the data set, in its own units, to draw over grids; None (with
    a warning) when they cannot be had here (a missing table, file or plug-in)."""
    from gridnoise.data import load
    from gridnoise.datafile import is_data_file

    data = data or DataConfig()
    try:
        if not is_data_file(dataset):
            return load(dataset, OVERLAY_POINTS, seed=data_seed)
        points = load(dataset, key=data.key, columns=data.columns)
        keep = np.random.default_rng(0).permutation(len(points))[:OVERLAY_POINTS]
        return points[np.sort(keep)]
    except GridnoiseError as e:  # e.g. dino without the Datasaurus table: draw the grids alone
        warnings.warn(f"{dataset} data not drawn over its grids: {e}", stacklevel=2)
        return None


def redraw_heatmaps(results: StudyResults, only_missing: bool = False) -> list[Path]:
    """Redraw the per-step heatmaps of every finished task with grids (or only of tasks lacking them)."""
    written = []
    for (run, dataset, seed) in sorted(results.metrics):
        run_dir = results.run_dir(run, dataset, seed)
        if rundir.final_snapshot(run_dir) is None:
            continue
        if only_missing and any((run_dir / rundir.HEATMAPS_DIR).glob("*.png")):
            continue
        written += draw_heatmaps(run_dir)
    return written


def make_figures(results: StudyResults, dest: str | Path, *, only_missing_heatmaps: bool = False) -> list[Path]:
    """Write every study figure into `dest` and return their paths; also redraw each task's heatmaps.

    The per-step heatmaps live in their run directories and are not in the returned list.
    """
    dest = Path(dest)
    written = [
        save_figure(train_loss_figure(results), dest / "train_loss.png"),
        save_figure(generated_images_figure(results), dest / "generated_images.png"),
        save_figure(evaluation_metrics_figure(results), dest / "evaluation_metrics.png"),
    ]
    if any("fine_grid_variance" in m for m in results.metrics.values()):
        written.append(save_figure(grid_variance_figure(results), dest / "grid_variance_comparison.png"))
    for run in results.runs:
        for dataset in results.datasets:
            seeds = results.seeds(run["name"], dataset)
            snapshot = rundir.final_snapshot(results.run_dir(run["name"], dataset, seeds[0])) if seeds else None
            if snapshot is None:
                continue
            cfg = rundir.read_config(snapshot.parent.parent)
            _, grids, extent = rundir.read_grid_snapshot(snapshot, cfg)
            extent = extent_to_data(extent, cfg.data.shift, cfg.data.scale)
            fig = final_grids_figure(grids, extent, points=overlay_points(dataset, cfg.data_seed, cfg.data),
                                     title=f"{run['label']} on {dataset}: final grids "
                                           f"(seed {seeds[0]}, step {rundir.snapshot_step(snapshot)})")
            written.append(save_figure(fig, dest / "final_grids" / f"{run['name']}_{rundir.file_stem(dataset)}.png"))
    redraw_heatmaps(results, only_missing=only_missing_heatmaps)
    return written
